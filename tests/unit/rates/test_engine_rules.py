"""What the engine publishes (services/rates/dependencies.py Engine._update), the floating requote of orders
(services/orders/domain/orders.py) and the admin's letter of frozen directions (services/notifier/domain.py)."""
from decimal import Decimal as D

import pytest

from services.notifier import domain as notifier_rules
from services.orders.domain import orders as order_rules
from services.rates.dependencies import Engine, configured_sources
from services.rates.domain.guards import Verdict


def row(**kw):
    base = {"direction_id": 1, "version": 1, "value": D("98"), "accepted_value": D("98"),
            "published_frozen": False, "published_rate_in": D(1), "published_rate_out": D("98"),
            "frozen_code": None}
    base.update(kw)
    return base


def test_first_verdict_is_published():
    update = Engine._update(row(published_frozen=None, value=None, accepted_value=None),
                            Verdict(D("98"), D(1), D("98")))
    assert update["publish"] and update["accepted_value"] == D("98")


def test_same_rate_is_not_published_again():
    assert Engine._update(row(), Verdict(D("98"), D(1), D("98"))) is None
    # the value moved below the precision: recorded, not published
    update = Engine._update(row(), Verdict(D("98.004"), D(1), D("98")))
    assert not update["publish"] and update["accepted_value"] == D("98.004")


def test_a_new_rate_a_freeze_and_a_thaw_are_published():
    assert Engine._update(row(), Verdict(D("99"), D(1), D("99")))["publish"]
    frozen = Engine._update(row(), Verdict(D("120"), reason="jump", code="jump"))
    assert frozen["publish"] and frozen["frozen"] and frozen["accepted_value"] == D("98")   # keeps the accepted
    # still frozen for the same reason: not announced again; for another reason: announced
    assert Engine._update(row(published_frozen=True, frozen_code="jump", value=D("121")),
                          Verdict(D("121"), reason="jump", code="jump")) is None
    assert Engine._update(row(published_frozen=True, frozen_code="jump"),
                          Verdict(None, reason="stale", code="stale"))["publish"]
    assert Engine._update(row(published_frozen=True, frozen_code="stale"), Verdict(D("98"), D(1), D("98")))["publish"]


def test_configured_sources_need_a_kind_and_an_url():
    assert configured_sources({"SOURCES": {"m": {"kind": "manual"}}})[0]["max_age_seconds"] == D(600)
    with pytest.raises(ValueError):
        configured_sources({"SOURCES": {"x": {"kind": "nope", "url": "http://x"}}})
    with pytest.raises(ValueError):
        configured_sources({"SOURCES": {"x": {"kind": "cbr"}}})


ORDER = {"amount_out": D("9800"), "rate_in": D(1), "rate_out": D("98"), "currency_out": "RUB"}


def direction(rate_in, rate_out, frozen=False, precision_out=2):
    return {"rate_in": D(rate_in), "rate_out": D(rate_out), "rate_frozen": frozen, "precision_out": precision_out}


def test_floating_requote_scales_amount_out_by_the_new_rate():
    amount_out, note = order_rules.floating_requote(ORDER, direction("1", "100.8"))
    assert amount_out == D("10080") and "10080 RUB instead of 9800" in note
    # fees are percentages: the same share stays withheld (9800 was 1 % under 9900 at 99)
    order = dict(ORDER, amount_out=D("9701.99"), rate_out=D("98"))
    assert order_rules.floating_requote(order, direction("1", "97"))[0] == D("9602.99")   # rounded down
    assert order_rules.floating_requote(ORDER, direction("0.5", "49"))[0] == D("9800")   # same rate, other form


def test_floating_requote_keeps_the_order_rate_when_frozen_or_unchanged():
    assert order_rules.floating_requote(ORDER, direction("1", "100", frozen=True)) is None
    assert order_rules.floating_requote(ORDER, direction("1", "98")) is None


def test_admin_letter_of_frozen_directions():
    subject, body, key = notifier_rules.directions_frozen_alert({"items": [
        {"direction_id": 7, "pair": "USDT → RUB", "reason": "no fresh value: cbr.USD", "code": "stale"}]}, "ev-1")
    assert subject == "Rates: 1 direction stopped taking orders"
    assert "#7 USDT → RUB: no fresh value: cbr.USD" in body and "/admin/rates" in body
    assert key == "rates-frozen:ev-1"
