"""The notification matrix (docs/notifier.md, "The matrix"), settings validation, retry and delivery-status rules."""
from decimal import Decimal

import pytest

from libs.contracts import events
from services.notifier import domain
from tests.interface.notifier import factories

SETTINGS = {"sms_enabled": True, "admin_email": "admin@example.com", "admin_phone": "+15550001111",
            "admin_language": "en", "enabled_kinds": list(domain.KINDS)}


def kinds(event_type, data, settings=SETTINGS, sms_configured=True):
    return sorted((s.kind, s.channel, s.audience) for s in domain.decide(event_type, data, settings, sms_configured))


def created(order):
    return kinds(events.ORDER_CREATED, {"order": order})


def changed(order, frm, to, **settings):
    return kinds(events.ORDER_STATUS_CHANGED, {"order": dict(order, status=to), "from_status": frm,
                                               "to_status": to}, dict(SETTINGS, **settings))


ADMIN_MAIL, CUSTOMER_MAIL, ADMIN_SMS, CUSTOMER_SMS = "admin", "customer", "admin", "customer"


# Every transition of the state machine (services/orders/domain/orders.py) per exchange type, and what it must send.
MATRIX = [
    # manual
    ("manual", None, "new", [("L1", "email", "customer"), ("L8", "email", "admin"), ("S3", "sms", "admin")]),
    ("manual", "new", "payment_claimed", [("L9", "email", "admin")]),
    ("manual", "payment_claimed", "processing", [("L2", "email", "customer")]),
    ("manual", "processing", "completed", [("L3", "email", "customer"), ("S5", "sms", "customer")]),
    ("manual", "payment_claimed", "completed", [("L3", "email", "customer"), ("S5", "sms", "customer")]),
    ("manual", "payment_claimed", "canceled", [("L4", "email", "customer")]),
    ("manual", "new", "canceled", [("L4", "email", "customer")]),
    ("manual", "new", "expired", []),
    ("manual", "processing", "deleted", []),
    # semi_auto
    ("semi_auto", None, "new", [("L1", "email", "customer")]),
    ("semi_auto", "new", "paid", [("L7", "email", "admin"), ("S2", "sms", "admin")]),
    ("semi_auto", "expired", "paid", [("L7", "email", "admin"), ("S2", "sms", "admin")]),
    ("semi_auto", "paid", "payout", []),
    ("semi_auto", "payout", "completed", [("L3", "email", "customer"), ("S5", "sms", "customer")]),
    ("semi_auto", "payout", "payout_error", [("L10", "email", "admin"), ("S4", "sms", "admin")]),
    ("semi_auto", "payout_error", "payout", []),
    ("semi_auto", "paid", "completed", [("L3", "email", "customer"), ("S5", "sms", "customer")]),
    ("semi_auto", "paid", "canceled", [("L4", "email", "customer")]),
    ("semi_auto", "new", "expired", []),
    # auto
    ("auto", None, "new", [("L1", "email", "customer")]),
    ("auto", "new", "paid", []),
    ("auto", "paid", "payout", []),
    ("auto", "payout", "completed", [("L3", "email", "customer"), ("L6", "email", "admin"), ("S1", "sms", "admin")]),
    ("auto", "payout", "payout_error", [("L10", "email", "admin"), ("S4", "sms", "admin")]),
    ("auto", "payout_error", "completed", [("L3", "email", "customer"), ("L6", "email", "admin"),
                                           ("S1", "sms", "admin")]),
    ("auto", "payout_error", "canceled", [("L4", "email", "customer")]),
    ("auto", "new", "expired", []),
]


@pytest.mark.parametrize("exchange_type,frm,to,expected", MATRIX)
def test_matrix(exchange_type, frm, to, expected):
    order = factories.order(exchange_type, phone="+15550002222", sms_opt_in=True)
    got = created(order) if frm is None else changed(order, frm, to)
    assert got == sorted(expected)


def test_sms_only_when_enabled_and_configured():
    order = factories.order("manual", phone="+15550002222", sms_opt_in=True)
    on = created(order)
    assert ("S3", "sms", "admin") in on
    assert all(k[1] == "email" for k in kinds(events.ORDER_CREATED, {"order": order},
                                             dict(SETTINGS, sms_enabled=False)))
    assert all(k[1] == "email" for k in kinds(events.ORDER_CREATED, {"order": order}, SETTINGS,
                                             sms_configured=False))
    assert ("S3", "sms", "admin") not in kinds(events.ORDER_CREATED, {"order": order},
                                               dict(SETTINGS, admin_phone=None))


@pytest.mark.parametrize("phone,opt_in,sent", [("+15550002222", True, True), ("+15550002222", False, False),
                                               (None, True, False), (None, False, False)])
def test_customer_sms_needs_phone_and_opt_in(phone, opt_in, sent):
    order = factories.order("manual", phone=phone, sms_opt_in=opt_in)
    assert (("S5", "sms", "customer") in changed(order, "processing", "completed")) is sent


def test_disabled_kinds_and_missing_admin_address():
    order = factories.order("manual")
    only_customer = [k for k in domain.KINDS if k not in ("L8", "S3")]
    assert created_with(order, enabled_kinds=only_customer) == [("L1", "email", "customer")]
    assert created_with(order, admin_email=None, admin_phone=None) == [("L1", "email", "customer")]


def created_with(order, **settings):
    return kinds(events.ORDER_CREATED, {"order": order}, dict(SETTINGS, **settings))


def test_recipients_and_languages():
    order = factories.order("manual", language="ru", email="c@example.com")
    sends = {s.kind: s for s in domain.decide(events.ORDER_CREATED, {"order": order},
                                              dict(SETTINGS, admin_language="en"), True)}
    assert (sends["L1"].recipient, sends["L1"].language) == ("c@example.com", "ru")
    assert (sends["L8"].recipient, sends["L8"].language) == ("admin@example.com", "en")
    assert sends["S3"].recipient == "+15550001111"


def test_unknown_event_sends_nothing():
    assert domain.decide("something_else", {"order": factories.order()}, SETTINGS, True) == []


def test_retry_delay_doubles_and_is_capped():
    assert [domain.retry_delay(n, 5, 60) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 60]


@pytest.mark.parametrize("current,new,forward", [
    (None, "queued", True), ("queued", "sending", True), ("queued", "delivered", True),
    ("sent", "delivered", True), ("delivered", "sent", False), ("delivered", "delivered", False),
    ("delivered", "undelivered", False), ("undelivered", "delivered", False), ("sending", "queued", False),
    ("delivered", "read", True), ("sent", "no-such-status", False)])
def test_delivery_status_only_moves_forward(current, new, forward):
    assert domain.status_moves_forward(current, new) is forward


def test_settings_validation_accepts_good_values():
    clean = domain.validate_settings({"sms_enabled": True, "admin_email": " a@example.com ",
                                      "admin_phone": "+4915112345678", "admin_language": "ru",
                                      "customer_sms_fee": "0.5", "enabled_kinds": ["S5", "L1"]})
    assert clean == {"sms_enabled": True, "admin_email": "a@example.com", "admin_phone": "+4915112345678",
                     "admin_language": "ru", "customer_sms_fee": Decimal("0.5"), "enabled_kinds": ["L1", "S5"]}
    assert domain.validate_settings({"admin_email": None, "admin_phone": ""}) == {"admin_email": None,
                                                                                  "admin_phone": None}


@pytest.mark.parametrize("fee,ok", [("0", True), ("99.999999", True), ("100", False), ("-0.000001", False),
                                    ("1.1234567", False), (0.5, False), ("NaN", False), ("1e309", False),
                                    ("abc", False), (True, False), (None, False)])
def test_customer_sms_fee_boundaries(fee, ok):
    if ok:
        assert domain.validate_settings({"customer_sms_fee": fee})["customer_sms_fee"] == Decimal(fee)
    else:
        with pytest.raises(domain.RuleError) as exc:
            domain.validate_settings({"customer_sms_fee": fee})
        assert "customer_sms_fee" in exc.value.fields


@pytest.mark.parametrize("changes,field", [
    ({"sms_enabled": "yes"}, "sms_enabled"), ({"admin_email": "nope"}, "admin_email"),
    ({"admin_email": 5}, "admin_email"), ({"admin_phone": "0123"}, "admin_phone"),
    ({"admin_language": "de"}, "admin_language"), ({"enabled_kinds": ["L1", "L99"]}, "enabled_kinds"),
    ({"enabled_kinds": "L1"}, "enabled_kinds"), ({"version": 3}, "version")])
def test_settings_validation_rejects(changes, field):
    with pytest.raises(domain.RuleError) as exc:
        domain.validate_settings(changes)
    assert field in exc.value.fields
