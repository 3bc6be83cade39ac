"""End to end: an `Idempotency-Key` belongs to its caller and to its request (docs/architecture.md, "Idempotency
keys"). The same key from someone else is someone else's order; the same key with another body is a 409; the
partner's withdrawal keys likewise."""
import uuid

import requests

from tests.conftest import eventually
from tests.e2e.partners_support import (balance, complete_manual, new_partner, order_as_visitor, sign_in,
                                        visit_link)


def _post(session, system, body, key, token=None):
    headers = {"Idempotency-Key": key}
    if token:
        headers["Authorization"] = "Bearer " + token
    return session.post(system.url + "/api/v1/orders", json=body, headers=headers, timeout=30)


def test_idempotency_key_is_one_global_namespace_and_ignores_the_body(system, directions, admin_token):
    key = uuid.uuid4().hex
    body = {"direction_id": directions["manual"]["id"], "amount_in": "50", "email": "idem-scope@example.com",
            "recipient": "R1"}
    alice, mallory = requests.Session(), requests.Session()
    first = _post(alice, system, body, key)
    assert first.status_code == 201, first.text
    # someone else guessing the key gets an order of their own, never Alice's token
    guessed = _post(mallory, system, body, key)
    assert guessed.status_code == 201, guessed.text
    assert guessed.json()["id"] != first.json()["id"] and guessed.json()["token"] != first.json()["token"]

    assert alice.cookies, "the gateway gives a caller without a session one, so a retry finds its order"
    again = _post(alice, system, body, key)
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]

    # the same key with another body is refused, and writes nothing
    before = system.sql("SELECT count(*) AS n FROM orders.orders")[0]["n"]
    other = _post(alice, system, dict(body, amount_in="60"), key)
    assert other.status_code == 409, other.text
    assert "different request" in other.json()["message"]
    assert system.sql("SELECT count(*) AS n FROM orders.orders")[0]["n"] == before
    # an equal body written differently (key order, amount "50.00") is the same request
    same = _post(alice, system, dict(reversed(list(dict(body, amount_in="50.00").items()))), key)
    assert same.status_code == 201 and same.json()["id"] == first.json()["id"]

    # a bearer token is its own scope, whatever cookies come with it
    by_token = [_post(requests.Session(), system, body, key, token=admin_token) for _ in range(2)]
    assert [r.status_code for r in by_token] == [201, 201]
    assert by_token[0].json()["id"] == by_token[1].json()["id"] != first.json()["id"]


def test_withdrawal_keys_are_the_accounts_and_bound_to_the_body(system, admin_token, directions):
    # the default rule pays 10 % of the margin: a few hundredths of a USDT for one order
    before = system.api("GET", "/api/v1/admin/commission", token=admin_token).json()["min_withdrawal"]
    r = system.sensitive("PUT", "/api/v1/admin/commission", token=admin_token, json={"min_withdrawal": "0.01"})
    assert r.status_code == 200, r.text
    try:
        _withdrawal_keys(system, admin_token, directions)
    finally:
        system.sensitive("PUT", "/api/v1/admin/commission", token=admin_token, json={"min_withdrawal": before})


def _withdrawal_keys(system, admin_token, directions):
    partner = new_partner(system)
    complete_manual(system, admin_token, order_as_visitor(system, visit_link(system, partner["link"]),
                                                          directions["manual"]))
    eventually(lambda: balance(system, partner) not in (None, "0"))
    # an account's orders: its scope is the account, whichever of its tokens calls
    body = {"direction_id": directions["manual"]["id"], "amount_in": "50", "email": partner["email"],
            "recipient": "R2"}
    key = uuid.uuid4().hex
    mine = [_post(requests.Session(), system, body, key, token=t)
            for t in (partner["token"], sign_in(system, partner["email"]))]
    assert [r.status_code for r in mine] == [201, 201] and mine[0].json()["id"] == mine[1].json()["id"]

    def withdraw(amount, key):
        return system.api("POST", "/api/v1/partner/withdrawals", token=partner["token"],
                          headers={"Idempotency-Key": key},
                          json={"amount": amount, "currency": "USDT", "to_account": "CAROL-USDT"})
    key = uuid.uuid4().hex
    first, again = withdraw("0.01", key), withdraw("0.010", key)
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    other = withdraw("0.02", key)
    assert other.status_code == 409 and "different request" in other.json()["message"], other.text
