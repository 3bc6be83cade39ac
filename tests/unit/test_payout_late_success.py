"""A payout resolved `failed` that went out after all (payments' `payout_succeeded_after_resolve`,
docs/payments.md "Resolving a payout by hand"): the pure rules of orders (no payout of a flagged order, the actions
the admin page offers, what a withdrawal's late success does to the balance), the order's wire form, the admin
letter's text, and the admin page's badge in English and Russian."""
import datetime
from decimal import Decimal as D

import pytest

from libs.contracts import events
from libs.contracts.orders import OrderSnapshotSchema
from services.notifier import domain as notifier_domain
from services.orders.domain import RuleError, orders as order_rules, partners as partner_rules
from services.orders.schemas import order_to_wire
from tests.unit.test_order_contract import ROW

T1 = datetime.datetime(2024, 5, 1, 13, 0, tzinfo=datetime.timezone.utc)


def test_a_flagged_order_refuses_a_payout_and_nothing_else():
    with pytest.raises(RuleError) as refused:
        order_rules.check_not_paid_out_late("payout", T1)
    assert refused.value.message == ("the payout of this order went out after it was resolved failed: "
                                     "finalize it instead")
    for action in ("finalize", "cancel", "payout_failed", "payout_sent", "delete"):
        order_rules.check_not_paid_out_late(action, T1)
    order_rules.check_not_paid_out_late("payout", None)


def test_the_admin_page_offers_no_payout_of_a_flagged_order():
    assert "payout" in order_rules.order_actions("payout_error", "auto")
    assert order_rules.order_actions("payout_error", "auto", T1) == ["finalize", "cancel", "delete"]
    assert order_rules.order_actions("paid", "semi_auto", T1) == ["finalize", "cancel", "delete"]


def test_the_wire_form_carries_the_flag_and_consumers_load_it():
    row = dict(ROW, status="payout_error", payout_late_success_at=T1, payout_late_success_provider_id="T-77")
    wire = order_to_wire(row)
    assert wire["payout_late_success_at"] == T1.isoformat() and wire["payout_late_success_provider_id"] == "T-77"
    assert "payout" not in wire["actions"] and "finalize" in wire["actions"]
    assert OrderSnapshotSchema().load(wire)["payout_late_success_at"] == T1
    plain = order_to_wire(dict(ROW, status="payout_error"))
    assert plain["payout_late_success_at"] is None and "payout" in plain["actions"]
    # an older snapshot without the fields still loads
    older = {k: v for k, v in wire.items() if not k.startswith("payout_late_success")}
    assert OrderSnapshotSchema().load(older)["payout_late_success_at"] is None


def test_the_status_history_note_says_not_to_pay_again():
    note = order_rules.late_success_note("T-77", D("91.540"), "EUR", 12)
    assert note == ("payout 12 of 91.54 EUR went out after it was resolved failed (provider transfer T-77): "
                    "do not pay it again; finalize it")


@pytest.mark.parametrize("status, method, returned, balance, expected", [
    # still approved: settles paid, the amount is still held, nothing moves
    ("approved", "payout", False, D("0"), ("paid", D("0"), D("0"))),
    # failed and given back: taken out again
    ("failed", "payout", True, D("12.5"), (None, D("5"), D("0"))),
    # failed, given back, and the partner has asked for most of it meanwhile: as far as the balance reaches
    ("failed", "payout", True, D("2"), (None, D("2"), D("3"))),
    ("failed", "payout", True, D("0"), (None, D("0"), D("5"))),
    # failed, and an earlier announcement took it back already: nothing more
    ("failed", "payout", False, D("12.5"), (None, D("0"), D("0"))),
    # already paid, or never a payout: the money never came back
    ("paid", "payout", False, D("12.5"), (None, D("0"), D("0"))),
    ("approved", "manual", False, D("12.5"), (None, D("0"), D("0"))),
])
def test_what_a_late_success_does_to_a_withdrawal(status, method, returned, balance, expected):
    assert tuple(partner_rules.late_paid(status, method, D("5"), returned, balance)) == expected


EVENT_ID = "0b0e9c1a-7d1c-4c55-9d7c-3b1f7a3f2e10"


def late(kind, **extra):
    data = {"kind": kind, "payout_id": 12, "order_id": None, "withdrawal_id": None, "amount": D("91.54"),
            "currency": "EUR", "to_account": "ACC-1", "provider_id": "T-77", "resolved_by": "olga",
            "idempotency_key": "inst-order-7-1"}
    data.update(extra)
    return data


def test_the_admin_letter_of_an_order_says_which_how_much_to_whom_and_not_to_pay_again():
    subject, body, key = notifier_domain.late_success_alert(late("order", order_id=7), EVENT_ID)
    assert key == "late-success:%s" % EVENT_ID
    assert "request #7" in subject and "91.54 EUR" in subject
    for text in ("resolved failed by olga", "Amount: 91.54 EUR", "Recipient: ACC-1", "Provider transfer: T-77",
                 "do NOT pay it again", "finalize it", "/admin/orders/7"):
        assert text in body, text


def test_the_admin_letter_of_a_withdrawal_names_the_withdrawal_and_the_ledger():
    subject, body, _ = notifier_domain.late_success_alert(
        late("withdrawal", withdrawal_id=31, provider_id=None, resolved_by=None), EVENT_ID)
    assert "partner withdrawal #31" in subject
    assert "Provider transfer: unknown" in body and "do NOT pay it again" in body and "ledger" in body
    assert "resolved failed, and" in body


def test_the_event_is_consumed_by_orders_and_the_notifier():
    from libs import topology
    consumers = {(s.service, s.method) for s in topology.SUBSCRIPTIONS
                 if (s.source, s.event_type) == (events.PAYMENTS, events.PAYOUT_SUCCEEDED_AFTER_RESOLVE)}
    assert consumers == {("orders", "handle_payout_succeeded_after_resolve"),
                         ("notifier", "handle_payout_succeeded_after_resolve")}


@pytest.mark.parametrize("lang, badge", [("en", "Paid out after resolve"), ("ru", "Выплачено после ручного решения")])
def test_the_admin_order_page_shows_the_badge(lang, badge):
    from flask import g, render_template

    from gateway import create_app
    from gateway.pages.i18n import translator
    app = create_app({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "SECRET_KEY": "x" * 32})
    flagged = dict(order_to_wire(dict(ROW, status="payout_error", payout_late_success_at=T1,
                                      payout_late_success_provider_id="T-77")), history=[], audit=[])
    unavailable = {"ok": False, "message": "down"}
    with app.test_request_context("/admin/orders/7?lang=%s" % lang):
        g.staff = {"name": "olga", "role": "operator"}
        page = render_template("admin/order.html", order=flagged, payments=unavailable, letters=unavailable,
                               return_to="/admin/orders/7", st=translator(lang))
        plain = render_template("admin/order.html",
                                order=dict(order_to_wire(dict(ROW, status="payout_error")), history=[], audit=[]),
                                payments=unavailable, letters=unavailable, return_to="/admin/orders/7",
                                st=translator(lang))
    assert 'id="payout-late-success"' in page and badge in page and "T-77" in page
    assert 'data-action="payout"' not in page and 'data-action="finalize"' in page
    assert "payout-late-success" not in plain and 'data-action="payout"' in plain
