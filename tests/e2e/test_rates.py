"""End to end, all processes of the Procfile running: the rate engine against its stand-in (sandbox/rates_standin.py,
scripted over POST /_control). A source changes its value -> the direction's rate follows within a poll; the
source stops answering -> after its max age (4 s here) the direction refuses new orders with a clear error and
comes back with the source; an order keeps its own rate (fixed), a floating one pays out at the rate at payment.

The tests use directions of their own (USDT -> RUB and USDT -> USD, auto), so the seeded ones other tests use keep
their hand-set rates."""
from decimal import Decimal as D

import pytest
import requests

from tests.conftest import eventually
from tests.e2e.conftest import RATES_STANDIN_PORT
from tests.e2e.test_payments_flow import balance, pay, status_is, wallet

pytestmark = pytest.mark.timeout(180)

STANDIN = "http://127.0.0.1:%d" % RATES_STANDIN_PORT


def standin(**body):
    r = requests.post(STANDIN + "/_control", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(autouse=True)
def standin_serving():
    yield
    standin(source="all", down=None)


def value_is(system, token, name, value):
    """Wait until the engine has fetched `value` for `name` (a source polls once a second here)."""
    def check():
        items = {v["name"]: v for s in system.api("GET", "/api/v1/admin/rates/sources", token=token).json()
                 for v in s["items"]}
        assert name in items and items[name]["value"] == value and items[name]["fresh"], items.get(name)
        return True
    eventually(check, timeout=15, interval=0.2, message="%s = %s fetched" % (name, value))


def public_direction(system, direction_id):
    return next(d for d in system.api("GET", "/api/v1/directions").json() if d["id"] == direction_id)


def rate_becomes(system, direction_id, rate_out, timeout=15):
    def check():
        d = public_direction(system, direction_id)
        assert not d["rate_frozen"] and d["rate_out"] == rate_out, (d["rate_in"], d["rate_out"], d["frozen_reason"])
        return d
    return eventually(check, timeout=timeout, interval=0.2, message="rate_out %s on #%d" % (rate_out, direction_id))


def own_direction(system, token, currency_out, **extra):
    body = dict({"currency_in": "USDT", "currency_out": currency_out, "exchange_type": "auto", "rate_in": "1",
                 "rate_out": "1", "fee": "0", "min_amount": "10", "max_amount": "5000"}, **extra)
    r = system.sensitive("POST", "/api/v1/admin/directions", token=token, json=body)
    if r.status_code == 409:    # a rerun on the same database
        d = next(d for d in system.api("GET", "/api/v1/admin/directions", token=token).json()
                 if (d["currency_in"], d["currency_out"], d["exchange_type"]) == ("USDT", currency_out, "auto"))
        r = system.sensitive("PATCH", "/api/v1/admin/directions/%d" % d["id"], token=token, json=extra or {"fee": "0"})
        assert r.status_code == 200, r.text
        return r.json()
    assert r.status_code == 201, r.text
    return r.json()


def save_formula(system, token, direction_id, expression, **extra):
    r = system.sensitive("PUT", "/api/v1/admin/rates/formulas/%d" % direction_id, token=token,
                   json=dict({"expression": expression, "quote": "out_per_in"}, **extra))
    assert r.status_code == 200, r.text
    return r.json()


def order(system, direction, amount="100", recipient=None):
    recipient = recipient or wallet(system, direction["currency_out"])
    return system.api("POST", "/api/v1/orders", json={"direction_id": direction["id"], "amount_in": amount,
                                                      "email": "rates@example.com", "recipient": recipient})


def test_rate_follows_source_freezes_when_stale_and_returns(system, admin_token):
    standin(source="binance", pin={"USDTTRY": {"bid": "35", "ask": "35.1"}}, down=None)
    value_is(system, admin_token, "binance.USDTTRY.bid", "35")
    direction = own_direction(system, admin_token, "RUB")
    saved = save_formula(system, admin_token, direction["id"], "binance.USDTTRY.bid * 2.8")
    assert saved["preview"]["rate_out"] == "98" and not saved["preview"]["frozen"]
    rate_becomes(system, direction["id"], "98")

    # the source moves: the rate follows within a poll (1 s here)
    standin(source="binance", pin={"USDTTRY": {"bid": "35.5", "ask": "35.6"}})
    rate_becomes(system, direction["id"], "99.4")

    # the source stops answering (each poll times out): after its max age the direction is frozen
    standin(source="binance", down="hang")

    def frozen():
        d = public_direction(system, direction["id"])
        assert d["rate_frozen"], "still live"
        return d
    d = eventually(frozen, timeout=30, interval=0.3, message="direction frozen after the max age")
    assert "binance.USDTTRY.bid" in d["frozen_reason"]
    refused = order(system, direction)
    assert refused.status_code == 409, refused.text
    assert "not taking orders" in refused.json()["message"]
    sources = {s["name"]: s for s in system.api("GET", "/api/v1/admin/rates/sources", token=admin_token).json()}
    assert sources["binance"]["failing"] and "Timeout" in sources["binance"]["last_error"]
    formulas = {f["direction_id"]: f for f in
                system.api("GET", "/api/v1/admin/rates/formulas", token=admin_token).json()}
    assert formulas[direction["id"]]["frozen"] and formulas[direction["id"]]["frozen_code"] == "stale"

    # the source is back: the direction thaws by itself and takes orders again
    standin(source="binance", down=None)
    rate_becomes(system, direction["id"], "99.4", timeout=20)
    accepted = order(system, direction)
    assert accepted.status_code == 201, accepted.text

    history = system.api("GET", "/api/v1/admin/rates/formulas/%d" % direction["id"], token=admin_token).json()
    states = [(r["rate_out"], r["frozen"]) for r in history["rates"]]
    assert ("98", False) in states and ("99.4", False) in states and any(frozen for _, frozen in states)
    assert history["history"][0]["after"]["expression"] == "binance.USDTTRY.bid * 2.8"
    assert history["history"][0]["actor"] == "admin"


def test_an_order_pays_out_at_its_own_rate(system, admin_token):
    standin(source="binance", pin={"USDTTRY": {"bid": "35", "ask": "35.1"}}, down=None)
    direction = own_direction(system, admin_token, "RUB")
    save_formula(system, admin_token, direction["id"], "binance.USDTTRY.bid * 2.8")
    rate_becomes(system, direction["id"], "98")
    recipient = wallet(system, "RUB")
    created = order(system, direction, "100", recipient)
    assert created.status_code == 201, created.text
    created = created.json()
    assert created["amount_out"] == "9800" and created["floating"] is False

    standin(source="binance", pin={"USDTTRY": {"bid": "36", "ask": "36.1"}})
    rate_becomes(system, direction["id"], "100.8")
    pay(system, created)
    done = status_is(system, created, "completed")
    assert done["amount_out"] == "9800" and (done["rate_in"], done["rate_out"]) == ("1", "98")
    eventually(lambda: balance(system, recipient) == D("9800"), timeout=30, interval=0.3,
               message="the recipient got 9800 RUB")


def test_a_floating_order_pays_out_at_the_rate_at_payment(system, admin_token):
    standin(source="binance_price", pin={"USDTTRY": "35"}, down=None)
    # the pinned value fetched before the formula is saved: the direction's own rate is 1 too, so rate_becomes("1")
    # alone would not tell the engine's first verdict (on an older, unpinned value) from the pinned one
    value_is(system, admin_token, "binance_price.USDTTRY", "35")
    direction = own_direction(system, admin_token, "USD", floating=True)
    save_formula(system, admin_token, direction["id"], "binance_price.USDTTRY / 35")
    rate_becomes(system, direction["id"], "1")
    assert public_direction(system, direction["id"])["floating"] is True
    recipient = wallet(system, "USD")
    created = order(system, direction, "100", recipient)
    assert created.status_code == 201, created.text
    created = created.json()
    assert created["floating"] is True and created["amount_out"] == "100"

    standin(source="binance_price", pin={"USDTTRY": "36.75"})     # +5 %: within the jump guard
    rate_becomes(system, direction["id"], "1.05")
    pay(system, created)
    done = status_is(system, created, "completed")
    assert done["amount_out"] == "105" and done["rate_out"] == "1.05"
    assert any(h["action"] == "requote" for h in done["history"])
    eventually(lambda: balance(system, recipient) == D("105"), timeout=30, interval=0.3,
               message="the recipient got 105 USD")
