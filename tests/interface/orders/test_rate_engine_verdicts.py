"""The rate engine's `rates_computed` (libs/contracts/rates.py) applied by the orders service in a real nameko
container, published to `rates.events` as the relay does: rates set, the direction frozen and thawed, each verdict
compare-and-set by its seq (a repeated or older one changes nothing), freezes audited, every change announced as
`directions_changed`; a frozen direction refuses new orders with a 409 saying why; operator edits announce too."""
import pytest
from nameko.testing.services import entrypoint_hook, entrypoint_waiter

from libs import errors
from libs.contracts import events
from tests.interface.event_publishing import publish
from tests.interface.orders_fixtures import db, orders  # noqa: F401  (fixtures)

ADMIN = {"name": "admin-rates", "role": "admin"}
HANDLER = "handle_rates_computed"


def call(container, method, *args):
    with entrypoint_hook(container, method) as hook:
        return hook(*args)


def own_direction(container, db):
    """A USD -> USDT semi_auto direction of this test (created once; the seeded ones stay as they are)."""
    found = db.fetchone("SELECT id FROM directions WHERE currency_in = 'USD' AND currency_out = 'USDT' "
                        "AND exchange_type = 'semi_auto'")
    if found:
        call(container, "update_direction", found["id"], {"rate_in": "1", "rate_out": "1"}, ADMIN)
        db.fetchone("UPDATE directions SET rate_engine_seq = 0, rate_frozen = false, frozen_reason = NULL "
                    "WHERE id = %s RETURNING id", (found["id"],))
        return call(container, "get_direction", found["id"])
    return call(container, "create_direction", {
        "currency_in": "USD", "currency_out": "USDT", "exchange_type": "semi_auto", "rate_in": "1",
        "rate_out": "1", "fee": "0", "min_amount": "10", "max_amount": "1000"}, ADMIN)


def verdict(direction_id, seq, rate_out=None, frozen=False, reason=None):
    return events.envelope(events.RATES, events.RATES_COMPUTED, {"items": [{
        "direction_id": direction_id, "seq": seq, "rate_in": "1" if rate_out else None, "rate_out": rate_out,
        "frozen": frozen, "reason": reason, "code": "stale" if frozen else None}]})


def deliver(container, envelope):
    with entrypoint_waiter(container, HANDLER, timeout=20):
        publish(envelope)


def announced(db, direction_id):
    rows = db.fetchall("SELECT payload FROM outbox WHERE event_type = %s ORDER BY seq", (events.DIRECTIONS_CHANGED,))
    return [r["payload"]["data"]["reason"] for r in rows if direction_id in r["payload"]["data"]["direction_ids"]]


def new_order(container, direction):
    return call(container, "create_order", {"direction_id": direction["id"], "amount_in": "100",
                                            "email": "rates@example.com", "recipient": "BOB-RATES"})


def test_verdicts_set_freeze_and_thaw_compare_and_set_by_seq(orders, db):
    direction = own_direction(orders, db)
    before = len(announced(db, direction["id"]))

    deliver(orders, verdict(direction["id"], 5, "1.02"))
    d = call(orders, "get_direction", direction["id"])
    assert (d["rate_in"], d["rate_out"], d["rate_frozen"]) == ("1", "1.02", False)
    assert new_order(orders, direction)["amount_out"] == "102"

    # an older verdict, and the same one again: nothing changes
    deliver(orders, verdict(direction["id"], 4, "0.5"))
    deliver(orders, verdict(direction["id"], 5, "0.5"))
    assert call(orders, "get_direction", direction["id"])["rate_out"] == "1.02"

    reason = "no fresh value: binance.USDTUSD.bid (older than its source's max age of 60 s)"
    deliver(orders, verdict(direction["id"], 6, frozen=True, reason=reason))
    d = call(orders, "get_direction", direction["id"])
    assert d["rate_frozen"] and d["frozen_reason"] == reason and d["rate_out"] == "1.02"   # keeps its last rate
    with pytest.raises(errors.Conflict) as refused:
        new_order(orders, direction)
    assert "not taking orders" in str(refused.value)

    deliver(orders, verdict(direction["id"], 7, "1.03"))
    d = call(orders, "get_direction", direction["id"])
    assert not d["rate_frozen"] and d["frozen_reason"] is None and d["rate_out"] == "1.03"
    assert new_order(orders, direction)["amount_out"] == "103"

    audit = db.fetchall("SELECT action, actor, detail FROM audit_log WHERE action IN ('direction_freeze', "
                        "'direction_thaw') AND (detail->>'direction_id')::bigint = %s ORDER BY id", (direction["id"],))
    assert [(a["action"], a["actor"]) for a in audit][-2:] == [("direction_freeze", "rate-engine"),
                                                              ("direction_thaw", "rate-engine")]
    # three changes by the engine (rate, freeze, thaw with a new rate); the two ignored verdicts announce nothing
    assert announced(db, direction["id"])[before:] == ["rate_engine"] * 3


def test_an_operator_edit_announces_directions_changed(orders, db):
    direction = own_direction(orders, db)
    before = len(announced(db, direction["id"]))
    call(orders, "update_direction", direction["id"], {"max_amount": "900", "floating": True}, ADMIN)
    assert announced(db, direction["id"])[before:] == ["direction_updated"]
    assert call(orders, "get_direction", direction["id"])["floating"] is True
    call(orders, "update_direction", direction["id"], {"floating": False}, ADMIN)
