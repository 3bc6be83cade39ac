"""Helpers of the partner program's end-to-end tests (tests/e2e/test_partners_*.py): accounts made the way a person
makes them (sign-up, the letter from the dev SMTP server of the Procfile, its link), referral visits in their own
cookie jar, manual exchanges completed by the operator API (claim -> process -> finalize: no payments needed)."""
import json
import re
import uuid

import requests

from libs.amqp_publish import ConfirmingPublisher
from tests.conftest import TEST_AMQP_URI, eventually
from tests.e2e.notifier_support import Mail, text_of

PASSWORD = "partner password 123"
LINK_RE = re.compile(r"(https?://\S+/account/(?:confirm|reset|destination)\?token=([A-Za-z0-9_-]+))")


def unique_email(prefix="partner"):
    return "%s-%s@example.com" % (prefix, uuid.uuid4().hex[:10])


def letter_link(system, email, kind):
    """(url, token, letter) of the newest letter of `kind` (SIGNUP, RESET, or WITHDRAWAL with a destination's
    link) the dev SMTP server received for `email`."""
    mail = Mail(system)

    def arrived():
        letters = [m for m in mail.letters(to=email) if m["X-Exchanger-Kind"] == kind]
        return letters[-1] if letters else None
    letter = eventually(arrived, timeout=30, message="%s letter to %s" % (kind, email))
    match = LINK_RE.search(text_of(letter))
    assert match, text_of(letter)
    return match.group(1), match.group(2), letter


def sign_up(system, email=None, password=PASSWORD, language="en"):
    """A confirmed account through the API and the real letter; returns {email, password, token, account}."""
    email = email or unique_email()
    r = system.api("POST", "/api/v1/account/signup", json={"email": email, "password": password,
                                                            "language": language})
    assert r.status_code == 202, r.text
    _, token, _ = letter_link(system, email, "SIGNUP")
    r = system.api("POST", "/api/v1/account/confirm", json={"token": token, "password": password})
    assert r.status_code == 200, r.text
    return {"email": email, "password": password, "account": r.json(), "token": sign_in(system, email, password)}


def confirm_destination(system, person):
    """Open the link of the newest WITHDRAWAL letter: the new destination may now be paid."""
    _, token, _ = letter_link(system, person["email"], "WITHDRAWAL")
    r = system.api("POST", "/api/v1/account/destinations/confirm", json={"token": token})
    assert r.status_code == 200, r.text
    return r.json()


def sign_in(system, email, password=PASSWORD):
    r = system.api("POST", "/api/v1/account/token", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    assert r.json()["token"].startswith("acc_")
    return r.json()["token"]


def become_partner(system, person):
    r = system.api("POST", "/api/v1/partner", token=person["token"], json={})
    assert r.status_code == 201, r.text
    person["code"], person["link"] = r.json()["code"], r.json()["link"]
    return person


def new_partner(system):
    return become_partner(system, sign_up(system))


def overview(system, person):
    r = system.api("GET", "/api/v1/partner", token=person["token"])
    assert r.status_code == 200, r.text
    return r.json()


def balance(system, person, currency="USDT"):
    return next((b["balance"] for b in overview(system, person)["balances"] if b["currency"] == currency), None)


def messages(system, person):
    r = system.api("GET", "/api/v1/account/messages", token=person["token"])
    assert r.status_code == 200, r.text
    return r.json()["items"]


def visit_link(system, link):
    """A new visitor (own cookie jar) opens the partner's link: the gateway keeps the code in a cookie."""
    visitor = requests.Session()
    r = visitor.get(link.replace(system.env["PUBLIC_URL"], system.url), timeout=30)
    assert r.status_code == 200
    return visitor


def order_as_visitor(system, visitor, direction, email=None, amount="100"):
    """POST /api/v1/orders from the visitor's browser session, no partner_code in the body: the cookie brings it."""
    r = visitor.post(system.url + "/api/v1/orders", json={
        "direction_id": direction["id"], "amount_in": amount, "email": email or unique_email("customer"),
        "recipient": "CAROL-USDT"}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def complete_manual(system, admin_token, order):
    assert system.api("POST", "/api/v1/orders/%s/paid" % order["token"], json={}).status_code == 200
    for action, body in (("process", {"notice": "funds found"}), ("finalize", {"notice": "paid out by hand"})):
        r = system.api("POST", "/api/v1/admin/orders/%s/%s" % (order["id"], action), token=admin_token, json=body)
        assert r.status_code == 200, r.text
    return r.json()


def set_direction_rule(system, admin_token, direction, percent, base):
    r = system.sensitive("PUT", "/api/v1/admin/commission/directions/%s" % direction["id"], token=admin_token,
                         json={"percent": percent, "base": base})
    assert r.status_code == 200, r.text


def clear_direction_rule(system, admin_token, direction):
    r = system.sensitive("DELETE", "/api/v1/admin/commission/directions/%s" % direction["id"], token=admin_token)
    assert r.status_code == 200, r.text


def republish(envelope, times=2):
    """Deliver an event again to every subscriber, exactly as orders' relay published it (same event_id)."""
    publisher = ConfirmingPublisher(TEST_AMQP_URI)
    try:
        result = publisher.publish_batch([{
            "message_id": envelope["event_id"], "exchange": "orders.events", "routing_key": envelope["event_type"],
            "body": json.dumps(envelope)} for _ in range(times)])
        assert result == ["ok"] * times, result
    finally:
        publisher.close()
