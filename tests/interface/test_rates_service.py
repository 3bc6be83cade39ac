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
