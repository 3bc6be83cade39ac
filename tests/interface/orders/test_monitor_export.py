"""The monitors' rates file kept by the orders service (docs/monitors.md): every catalogue or reserve change
publishes `directions_changed`, the service's own handler renders the file again under a new version, the
maintenance switch (audited) empties it. Each test makes its own currencies with fresh monitor codes, so it reads
its own items among whatever else the shared database lists."""
import datetime
import time
import uuid
from decimal import Decimal as D

import pytest
from nameko.testing.services import entrypoint_hook

from libs import errors
from libs.contracts import events
from libs.contracts import payments as contract
from libs.monitor_rates import parse_rates_xml
from services.orders.dependencies import Orders
from tests.interface.orders_fixtures import db, orders  # noqa: F401  (fixtures)

ADMIN = {"name": "admin-monitors", "role": "admin"}


def call(container, method, *args):
    with entrypoint_hook(container, method) as hook:
        return hook(*args)


def coded_direction(container, exchange_type="auto", reserve="5000"):
    """Two fresh currencies with monitor codes and a direction between them (1 -> 2, fee 0)."""
    tag = uuid.uuid4().hex[:6].upper()
    codes = []
    for side in ("A", "B"):
        code = "M%s%s" % (side, tag)
        call(container, "create_currency", {"code": code, "name": code, "precision": 2, "payment_system": "sandbox",
                                            "account": "EXCH-%s" % code, "reserve": reserve,
                                            "monitor_code": "MON%s%s" % (side, tag)}, ADMIN)
        codes.append(code)
    direction = call(container, "create_direction", {
        "currency_in": codes[0], "currency_out": codes[1], "exchange_type": exchange_type, "rate_in": "1",
        "rate_out": "2", "fee": "0", "min_amount": "10", "max_amount": "1000"}, ADMIN)
    return direction, "MONA%s" % tag, "MONB%s" % tag


def items_of(document, code_in):
    return [i for i in parse_rates_xml(document["xml"].encode()) if i["from"] == code_in]


def wait_for(container, check, timeout=15.0):
    """The document once `check(items)` holds: the event goes through the outbox, the broker and the handler."""
    deadline = time.monotonic() + timeout
    while True:
        document = call(container, "monitor_export_document", None)
        if check(document):
            return document
        if time.monotonic() > deadline:
            pytest.fail("the monitors' file did not follow: %s" % document["xml"][:2000])
        time.sleep(0.1)


def test_a_new_direction_appears_and_follows_its_edits_and_reserve(orders, db):
    direction, code_in, code_out = coded_direction(orders, exchange_type="semi_auto")
    document = wait_for(orders, lambda d: items_of(d, code_in))
    assert items_of(document, code_in) == [{
        "from": code_in, "to": code_out, "in": D(1), "out": D(2), "amount": D(5000), "minamount": D(10),
        "maxamount": D(1000), "param": ["manual"], "city": None}]

    call(orders, "update_direction", direction["id"], {"monitor_params": ["cardverify"], "city": "MSK",
                                                       "rate_out": "2.5"}, ADMIN)
    document = wait_for(orders, lambda d: items_of(d, code_in) and items_of(d, code_in)[0]["out"] == D("2.5"))
    assert items_of(document, code_in)[0]["param"] == ["manual", "cardverify"]
    assert items_of(document, code_in)[0]["city"] == "MSK"

    # the reserve follows the payout account's balance (payments' balance_changed)
    envelope, data = contract.load(contract.BalanceChangedSchema, events.envelope("payments", "balance_changed", {
        "system": "sandbox", "account": "EXCH-%s" % direction["currency_out"], "currency": direction["currency_out"],
        "balance": "1234.5", "observed_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}))
    assert Orders(db).apply_balance(envelope["event_id"], "orders.handle_balance_changed", data)
    wait_for(orders, lambda d: items_of(d, code_in) and items_of(d, code_in)[0]["amount"] == D("1234.5"))

    # without a monitor code the monitors cannot place the currency: the direction leaves the file
    call(orders, "update_currency", direction["currency_out"], {"monitor_code": None}, ADMIN)
    wait_for(orders, lambda d: not items_of(d, code_in))


def test_a_frozen_or_inactive_direction_leaves_the_file(orders, db):
    direction, code_in, _ = coded_direction(orders)
    wait_for(orders, lambda d: items_of(d, code_in))
    with db.transaction() as cur:   # the rate engine's guard (services/rates) sets this; no event of its own here
        cur.execute("UPDATE directions SET rate_frozen = true, frozen_reason = 'test' WHERE id = %s",
                    (direction["id"],))
    state = call(orders, "refresh_monitor_export")
    assert not items_of(call(orders, "monitor_export_document", None), code_in), state
    with db.transaction() as cur:
        cur.execute("UPDATE directions SET rate_frozen = false WHERE id = %s", (direction["id"],))
    call(orders, "refresh_monitor_export")
    assert items_of(call(orders, "monitor_export_document", None), code_in)
    call(orders, "update_currency", direction["currency_in"], {"active": False}, ADMIN)
    wait_for(orders, lambda d: not items_of(d, code_in))


def test_the_version_moves_only_when_the_document_changes(orders):
    call(orders, "refresh_monitor_export")
    first = call(orders, "monitor_export_document", None)
    again = call(orders, "refresh_monitor_export")
    assert again["version"] == first["version"]
    assert call(orders, "monitor_export_document", first["version"]) == {
        "version": first["version"], "rendered_at": first["rendered_at"], "unchanged": True}
    _, code_in, _ = coded_direction(orders)
    document = wait_for(orders, lambda d: items_of(d, code_in))
    assert document["version"] > first["version"] and document["rendered_at"] > first["rendered_at"]


def test_maintenance_empties_the_file_and_is_audited(orders, db):
    _, code_in, _ = coded_direction(orders)
    wait_for(orders, lambda d: items_of(d, code_in))
    try:
        state = call(orders, "set_monitor_maintenance", True, ADMIN)
        assert state["maintenance"] and state["maintenance_changed_by"] == "admin-monitors"
        document = wait_for(orders, lambda d: d["maintenance"] and d["items"] == 0)
        assert parse_rates_xml(document["xml"].encode()) == [] and document["xml"].strip().endswith("<rates/>")
        audit = db.fetchone("SELECT * FROM audit_log WHERE action = 'monitor_maintenance' ORDER BY id DESC LIMIT 1")
        assert audit["actor"] == "admin-monitors" and audit["detail"]["maintenance"] is True
    finally:
        call(orders, "set_monitor_maintenance", False, ADMIN)
    wait_for(orders, lambda d: items_of(d, code_in))
    with pytest.raises(errors.Forbidden):
        call(orders, "set_monitor_maintenance", True, None)
    with pytest.raises(errors.ValidationFailed):
        call(orders, "set_monitor_maintenance", "yes", ADMIN)


def test_a_monitor_code_names_one_currency(orders):
    direction, code_in, _ = coded_direction(orders)
    with pytest.raises(errors.ValidationFailed) as exc:
        call(orders, "update_currency", direction["currency_out"], {"monitor_code": code_in}, ADMIN)
    assert exc.value.fields == {"monitor_code": ["already the monitor code of %s" % direction["currency_in"]]}
    with pytest.raises(errors.ValidationFailed) as exc:
        call(orders, "update_currency", direction["currency_out"], {"monitor_code": "sber rub"}, ADMIN)
    assert "monitor_code" in exc.value.fields
