"""Helpers of the notifier's end-to-end tests (tests/e2e/test_notifier_*.py).

The system runs as `make run` runs it: the Procfile's `smtp:` line is the real aiosmtpd dev server, keeping mail
in DEVSMTP_MAILDIR (tests/e2e/conftest.py sets it), which these helpers read; the notifier's Twilio client points
at the stand-in started here on TWILIO_BASE_URL's port, which also posts signed status callbacks to the gateway.
"""
import email
import email.policy
import json
import mailbox
import os
import signal
import socket
import threading
import urllib.parse
import uuid

import requests

from libs.amqp_publish import ConfirmingPublisher
from tests.conftest import TEST_AMQP_URI, eventually
from tests.interface.notifier.twilio_standin import TwilioStandin

_standin = None
_lock = threading.Lock()


def standin(system):
    """One Twilio stand-in per test session, where TWILIO_BASE_URL points (the port is fixed by the env)."""
    global _standin
    with _lock:
        if _standin is None:
            port = urllib.parse.urlsplit(system.env["TWILIO_BASE_URL"]).port
            _standin = TwilioStandin(system.env["TWILIO_ACCOUNT_SID"], system.env["TWILIO_AUTH_TOKEN"],
                                     port=port, callbacks=True)
        return _standin


class Mail:
    """What the dev SMTP server of the Procfile received."""

    def __init__(self, system):
        self.maildir = system.env["DEVSMTP_MAILDIR"]
        self.port = int(system.env["DEVSMTP_PORT"])

    def letters(self, to=None, order_id=None):
        if not os.path.isdir(os.path.join(self.maildir, "new")):
            return []
        box = mailbox.Maildir(self.maildir, factory=None, create=False)
        out = []
        for key in box.iterkeys():
            try:
                with box.get_file(key) as fh:
                    msg = email.message_from_binary_file(fh, policy=email.policy.default)
            except FileNotFoundError:  # moved meanwhile
                continue
            if (to is None or msg["To"] == to) and (order_id is None or msg["X-Exchanger-Order"] == str(order_id)):
                out.append(msg)
        return out

    def kinds(self, to, order_id=None):
        return sorted(m["X-Exchanger-Kind"] for m in self.letters(to, order_id))

    # -- outage: the dev server stops listening and cuts open sessions on SIGUSR1, listens again on SIGUSR2 ------
    def _pid(self):
        with open(os.path.join(self.maildir, "devsmtp.pid")) as fh:
            return int(fh.read().strip())

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self):
        os.kill(self._pid(), signal.SIGUSR1)
        eventually(lambda: not self.listening(), timeout=10, message="SMTP stopped")

    def start(self):
        os.kill(self._pid(), signal.SIGUSR2)
        eventually(self.listening, timeout=10, message="SMTP back")


def text_of(msg):
    return msg.get_body(("plain",)).get_content()


def new_order(system, direction, **extra):
    body = {"direction_id": direction["id"], "amount_in": extra.pop("amount_in", "100"),
            "email": "customer-%s@example.com" % uuid.uuid4().hex[:10],
            "recipient": "WALLET-%s" % uuid.uuid4().hex[:6]}
    body.update(extra)
    response = system.api("POST", "/api/v1/orders", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def unique_phone():
    return "+1777%07d" % (uuid.uuid4().int % 10**7)


def log(system, token, **filters):
    response = system.api("GET", "/api/v1/admin/notifications", token=token, params=filters)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def settled(system, token, order_ids):
    """Every notification of these orders has left pending/sending (sent or failed)."""
    rows = [r for oid in order_ids for r in log(system, token, order_id=oid)]
    return rows and all(r["status"] in ("sent", "failed") for r in rows)


def consumed(system, order_id):
    """Every event orders published about this order has been consumed by the notifier (its inbox)."""
    rows = system.sql(
        "SELECT count(*) FILTER (WHERE p.event_id IS NULL) AS missing, count(*) AS n FROM orders.outbox o "
        "LEFT JOIN notifier.processed_events p ON p.event_id = o.id WHERE o.aggregate_id = %s "
        "AND o.event_type IN ('order_created', 'order_status_changed')", (str(order_id),))
    return rows[0]["n"] > 0 and rows[0]["missing"] == 0


def put_settings(system, token, **changes):
    response = system.sensitive("PUT", "/api/v1/admin/settings", token=token, json=changes)
    assert response.status_code == 200, response.text
    return response.json()


def publish_to_notifier(envelope):
    """A realistic order event straight into the notifier's queue (what orders would publish once payments
    drives these transitions), so no other consumer sees an order that does not exist."""
    queue = "evt-orders-%s--notifier.handle_%s" % (envelope["event_type"], envelope["event_type"])
    publisher = ConfirmingPublisher(TEST_AMQP_URI)
    try:
        result = publisher.publish_batch([{"message_id": envelope["event_id"], "exchange": "", "routing_key": queue,
                                           "body": json.dumps(envelope)}])
        assert result == ["ok"], result
    finally:
        publisher.close()


def signed_callback(system, params, token=None, url=None):
    from twilio.request_validator import RequestValidator
    url = url or system.url + "/api/v1/webhooks/twilio"
    signature = RequestValidator(token or system.env["TWILIO_AUTH_TOKEN"]).compute_signature(url, params)
    return requests.post(system.url + "/api/v1/webhooks/twilio", data=params,
                         headers={"X-Twilio-Signature": signature}, timeout=10)


# -- the sandbox payment system (what a customer's bank transfer looks like; see tests/e2e/test_payments_flow.py) --
def sandbox(system, method, path, **kwargs):
    return requests.request(method, system.sandbox_url + path, timeout=30, **kwargs)


def wallet(system, currency, balance="0"):
    r = sandbox(system, "POST", "/api/accounts", json={"currency": currency, "balance": balance,
                                                       "owner": "notifier-e2e-%s" % uuid.uuid4().hex[:6]})
    assert r.status_code == 201, r.text
    return r.json()["account"]


def pay(system, order):
    pay_to = order["pay_to"]
    payer = wallet(system, pay_to["currency"], balance="1000000")
    r = sandbox(system, "POST", "/api/transfers", json={
        "from_account": payer, "to_account": pay_to["account"], "amount": pay_to["amount"],
        "currency": pay_to["currency"], "reference": pay_to["reference"]})
    assert r.status_code == 201, r.text


def status_is(system, order, *statuses):
    def check():
        current = system.api("GET", "/api/v1/orders/%s" % order["token"]).json()
        assert current["status"] in statuses, "order %s is %s" % (order["id"], current["status"])
        return current
    return eventually(check, timeout=30, interval=0.2, message="order %s %s" % (order["id"], "/".join(statuses)))
