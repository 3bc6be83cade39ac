"""The rates service in a real nameko container against real PostgreSQL and RabbitMQ, its sources pointed at the
stand-in (sandbox/rates_standin.py) served in this process: a tick stores each source's values with their own
time and the time fetched; a formula is refused at save when it divides by zero, previewed and saved with its
history; verdicts go out through the outbox (rates_computed), a freeze also as directions_frozen; a source that
fails keeps its error and its values age out; an operator's manual value counts with its own time."""
import threading
import time
from http.server import ThreadingHTTPServer

import pytest
from nameko.containers import ServiceContainer
from nameko.testing.services import entrypoint_hook

from libs import errors
from libs.contracts import events
from libs.db import Database
from sandbox import rates_standin
from services.rates.service import RatesService
from tests.conftest import eventually

ADMIN = {"name": "admin-rates", "role": "admin"}
DIRECTION = {"id": 9001, "currency_in": "USDT", "currency_out": "RUB", "precision_in": 6, "precision_out": 2}


@pytest.fixture
def standin():
    server = ThreadingHTTPServer(("127.0.0.1", 0), rates_standin.Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rates_standin.STATE.control({"source": "all", "down": None, "pin": None})
    # pinned before the service starts: its eager first tick fetches it already
    rates_standin.STATE.control({"source": "binance", "pin": {"USDTTRY": {"bid": "35", "ask": "35.1"}}})
    yield "http://127.0.0.1:%d" % server.server_address[1]
    rates_standin.STATE.control({"source": "all", "down": None, "pin": None})
    server.shutdown()
    server.server_close()


@pytest.fixture
def db(migrated_database):
    database = Database(migrated_database, schema="rates", maxconn=2)
    with database.transaction() as cur:
        cur.execute("DELETE FROM formulas; DELETE FROM source_values; DELETE FROM sources; DELETE FROM outbox")
    yield database
    database.close()


@pytest.fixture
def rates(nameko_config, db, standin):
    sources = {
        "cbr": {"kind": "cbr", "url": standin + "/cbr/XML_daily.asp", "poll_seconds": 0.5,
                "timeout_seconds": 5, "max_age_seconds": 345600},
        "binance": {"kind": "binance_book", "url": standin + "/binance/api/v3/ticker/bookTicker",
                    "poll_seconds": 0.01, "timeout_seconds": 0.5, "max_age_seconds": 1},
        "manual": {"kind": "manual", "max_age_seconds": 3600},
    }
    container = ServiceContainer(RatesService, dict(nameko_config, METRICS_PORT=None, TICK_SECONDS=3600,
                                                    SOURCES=sources, OUTBOX_IDLE_WAIT=3600))
    container.start()
    yield container
    container.kill()


def call(container, method, *args):
    with entrypoint_hook(container, method) as hook:
        return hook(*args)


def outbox(db, event_type):
    return [r["payload"]["data"] for r in db.fetchall(
        "SELECT payload FROM outbox WHERE event_type = %s ORDER BY seq", (event_type,))]


def test_sources_formula_guards_and_manual_value(rates, db):
    def fetched():
        # the service's own first tick runs at its start, side by side with ours: tick until both have answered
        call(rates, "run_engine")
        found = {(v["source"], v["symbol"]): v for v in db.fetchall("SELECT * FROM source_values")}
        assert ("cbr", "KZT") in found and ("binance", "USDTTRY.bid") in found, sorted(found)
        return found
    values = eventually(fetched, timeout=20, interval=0.2, message="both sources fetched")
    assert str(values[("cbr", "KZT")]["value"]) == "0.189012"                  # Nominal 100
    assert values[("cbr", "USD")]["source_time"] is not None                    # the bank's own date
    assert values[("binance", "USDTTRY.bid")]["source_time"] is None            # Binance states none: fetched_at
    assert str(values[("binance", "USDTTRY.bid")]["value"]) == "35"

    with pytest.raises(errors.ValidationFailed) as refused:
        call(rates, "save_formula", DIRECTION, {"expression": "binance.USDTTRY.bid / (2 - 2)"}, ADMIN)
    assert "division by zero" in str(refused.value.fields["expression"])
    with pytest.raises(errors.ValidationFailed):
        call(rates, "save_formula", DIRECTION, {"expression": "nowhere.X * 2"}, ADMIN)

    preview = call(rates, "preview_formula", DIRECTION, {"expression": "binance.USDTTRY.bid * 2.8"})
    assert (preview["rate_in"], preview["rate_out"], preview["frozen"]) == ("1", "98", False)
    saved = call(rates, "save_formula", DIRECTION, {"expression": "binance.USDTTRY.bid * 2.8"}, ADMIN)
    assert saved["formula"]["version"] == 1 and saved["formula"]["rate_out"] == "98"
    [published] = outbox(db, events.RATES_COMPUTED)
    assert published["items"][0]["rate_out"] == "98" and published["items"][0]["seq"] == 1

    # no change, no event
    call(rates, "recompute")
    assert len(outbox(db, events.RATES_COMPUTED)) == 1

    # a jump of 20 % freezes; an operator accepts it and the direction thaws at the new rate
    rates_standin.STATE.control({"source": "binance", "pin": {"USDTTRY": {"bid": "42", "ask": "42.1"}}})
    call(rates, "run_engine")
    formula = call(rates, "get_formula", DIRECTION["id"])["formula"]
    assert formula["frozen"] and formula["frozen_code"] == "jump" and "20%" in formula["frozen_reason"]
    [frozen] = outbox(db, events.DIRECTIONS_FROZEN)
    assert frozen["items"][0]["direction_id"] == DIRECTION["id"] and frozen["items"][0]["pair"] == "USDT → RUB"
    accepted = call(rates, "accept_rate", DIRECTION["id"], ADMIN)
    assert not accepted["frozen"] and accepted["rate_out"] == "117.6"

    # the source fails: its error is kept, and after its max age (1 s) the direction is frozen as stale
    rates_standin.STATE.control({"source": "binance", "down": "error"})
    time.sleep(1.2)
    call(rates, "run_engine")
    sources = {s["name"]: s for s in call(rates, "list_sources")}
    assert sources["binance"]["failing"] and sources["binance"]["last_error"] == "HTTP 503"
    formula = call(rates, "get_formula", DIRECTION["id"])["formula"]
    assert formula["frozen_code"] == "stale" and "binance.USDTTRY.bid" in formula["frozen_reason"]

    # a fallback on the manual source keeps it open
    call(rates, "set_manual_value", "manual", "usdt_rub", "118", ADMIN)
    call(rates, "save_formula", DIRECTION, {"expression": "first(binance.USDTTRY.bid * 2.8, manual.usdt_rub)",
                                            "expected_version": 1}, ADMIN)
    detail = call(rates, "get_formula", DIRECTION["id"])
    assert not detail["formula"]["frozen"] and detail["formula"]["rate_out"] == "118"
    assert [h["version"] for h in detail["history"]] == [2, 1]
    assert detail["history"][0]["before"]["expression"] == "binance.USDTTRY.bid * 2.8"
    assert [r["frozen"] for r in detail["rates"]] == [False, True, False, True, False]
    with pytest.raises(errors.Conflict):
        call(rates, "save_formula", DIRECTION, {"expression": "manual.usdt_rub", "expected_version": 1}, ADMIN)
    audit = [r["action"] for r in db.fetchall("SELECT action FROM audit_log ORDER BY id")]
    assert {"formula_save", "rate_accept", "manual_value_set"} <= set(audit)


def test_staff_changes_raise_security_change_in_the_same_transaction_the_engine_none(db):
    """A staff actor's manual value, formula save, accept and removal each write `security_change` into the rates
    outbox with their audit row (docs/security.md, "Step-up and alerts"); the engine's own actor (no role) and a
    save refused for its version write none."""
    from services.rates.store import RatesStore
    store = RatesStore(db)
    with db.transaction() as cur:
        cur.execute("INSERT INTO sources (name, kind, poll_seconds, timeout_seconds, max_age_seconds) "
                    "VALUES ('manual', 'manual', 60, 5, 3600) ON CONFLICT (name) DO NOTHING")
    staff = {"name": "op-rates", "role": "operator", "ip": "198.51.100.7"}
    engine = {"name": "rate-engine", "kind": "system"}
    values = {"expression": "manual.USDRUB", "quote": "out_per_in", "max_jump_percent": "5",
              "max_spread_percent": "5"}
    store.set_manual_value("manual", "USDRUB", "90.5", engine)
    store.save_formula(DIRECTION, values, engine)
    assert outbox(db, events.SECURITY_CHANGE) == []
    assert store.save_formula(DIRECTION, values, ADMIN, expected_version=99) is None
    assert outbox(db, events.SECURITY_CHANGE) == []
    store.set_manual_value("manual", "USDRUB", "91", staff)
    store.save_formula(DIRECTION, dict(values, expression="markup(manual.USDRUB, 2)"), ADMIN)
    store.accept(DIRECTION["id"], staff)
    store.delete_formula(DIRECTION["id"], ADMIN)
    alerts = outbox(db, events.SECURITY_CHANGE)
    assert [a["action"] for a in alerts] == ["manual_value_set", "formula_save", "rate_accept", "formula_delete"]
    assert alerts[0]["actor"] == "op-rates" and alerts[0]["actor_ip"] == "198.51.100.7"
    assert alerts[0]["detail"]["value"] == "91" and alerts[0]["detail"]["before"] == "90.5"
    assert alerts[1]["detail"]["after"]["expression"] == "markup(manual.USDRUB, 2)"
    assert alerts[1]["detail"]["before"]["expression"] == "manual.USDRUB"
    assert all(a["what"] != a["action"] for a in alerts)       # each has its admin-readable description
    audited = db.fetchall("SELECT actor, action FROM audit_log WHERE action IN ('manual_value_set', 'formula_save', "
                          "'rate_accept', 'formula_delete') ORDER BY id DESC LIMIT 6")
    assert len(audited) == 6 and {r["actor"] for r in audited} == {"rate-engine", "op-rates", "admin-rates"}
