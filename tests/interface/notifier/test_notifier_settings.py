"""Settings, the send log, resend, admin alerts and private messages over the notifier's RPC."""
import uuid

import pytest
from nameko.exceptions import RemoteError

from libs.contracts import events
from tests.conftest import eventually
from tests.interface.notifier import factories
from tests.interface.notifier.conftest import text_of, unique_email

ADMIN = {"name": "root", "role": "admin", "ip": "10.1.1.1"}
OPERATOR = {"name": "op1", "role": "operator", "ip": "10.1.1.2"}


def remote(fn, *args):
    with pytest.raises(RemoteError) as exc:
        fn(*args)
    return exc.value


def test_settings_change_is_validated_versioned_announced_and_mailed(notifier, rpc, db, devsmtp, settings):
    old_admin = settings()["admin_email"]
    new_admin = unique_email("admin")
    current = rpc.get_settings()
    assert current["sms_configured"] is True and current["admin_email"] == old_admin

    assert remote(rpc.put_settings, {"sms_enabled": True}, OPERATOR).exc_type == "Forbidden"
    err = remote(rpc.put_settings, {"customer_sms_fee": "100", "admin_phone": "12"}, ADMIN)
    assert err.exc_type == "ValidationFailed"
    assert remote(rpc.put_settings, {"sms_enabled": True}, ADMIN, current["version"] - 1).exc_type == "Conflict"

    updated = rpc.put_settings({"admin_email": new_admin, "customer_sms_fee": "0.75", "sms_enabled": True},
                               ADMIN, current["version"])
    assert updated["version"] == current["version"] + 1
    assert (updated["admin_email"], updated["customer_sms_fee"], updated["sms_enabled"]) == (new_admin, "0.75", True)
    # the same change again is a no-op (a repeated RPC changes nothing and mails nobody)
    assert rpc.put_settings({"admin_email": new_admin}, ADMIN)["version"] == updated["version"]

    history = db.fetchone("SELECT * FROM settings_history WHERE version = %s", (updated["version"],))
    assert history["actor"] == "root" and history["before"]["admin_email"] == old_admin
    event = db.fetchone("SELECT payload FROM outbox WHERE event_type = 'settings_changed' "
                        "AND payload->'data'->>'version' = %s", (str(updated["version"]),))["payload"]
    assert event["data"]["customer_sms_fee"] == "0.75" and event["data"]["customer_sms_available"] is True
    assert event["data"]["changed_by"] == "root" and "admin_email" not in event["data"]["settings"]
    # both the old and the new admin address hear about it
    for address in (old_admin, new_admin):
        letter = eventually(lambda: devsmtp.letters(address), message="settings alert to %s" % address)[0]
        assert letter["X-Exchanger-Kind"] == "ALERT" and "Notification settings changed" in letter["Subject"]
        body = text_of(letter)
        assert "customer_sms_fee: 0 -> 0.75" in body and "root" in body and "10.1.1.1" in body
    eventually(lambda: db.fetchone("SELECT published_at FROM outbox WHERE event_type = 'settings_changed' "
                                   "ORDER BY seq DESC LIMIT 1")["published_at"], message="published")


def test_admin_alert_once_per_key_and_also_to(notifier, rpc, devsmtp, settings):
    admin = settings()["admin_email"]
    extra = unique_email("old-admin")
    key = uuid.uuid4().hex
    first = rpc.send_admin_alert("Sign-in from a new address", "op1 from 10.9.9.9", key, extra)
    again = rpc.send_admin_alert("Sign-in from a new address", "op1 from 10.9.9.9", key, extra)
    assert len(first["queued"]) == 2 and again["queued"] == []
    text = "no key %s" % uuid.uuid4().hex  # without a key the text itself is the key (callers that retry)
    assert len(rpc.send_admin_alert("Alert", text)["queued"]) == 1
    assert rpc.send_admin_alert("Alert", text)["queued"] == []
    eventually(lambda: len(devsmtp.letters(admin)) == 2 and len(devsmtp.letters(extra)) == 1)
    assert remote(rpc.send_admin_alert, "", "x").exc_type == "ValidationFailed"


def test_send_log_filters_and_resend_rules(notifier, rpc, publish, db, settings):
    settings(admin_email=None)
    order = factories.order("manual", email=unique_email())
    _, event = factories.changed(order, "new", "canceled", action="cancel", note="duplicate request")
    publish(event)
    eventually(lambda: rpc.list_notifications({"order_id": order["id"], "status": "sent"})["items"])
    log = rpc.list_notifications({"order_id": order["id"], "kind": "L4", "channel": "email"})
    [item] = log["items"]
    assert (item["recipient"], item["status"], item["attempts"]) == (order["email"], "sent", 1)
    assert "duplicate request" in item["body_text"] and item["subject"].endswith("is canceled")
    assert rpc.list_notifications({"order_id": order["id"], "kind": "L1"})["items"] == []
    assert remote(rpc.list_notifications, {"status": "bogus"}).exc_type == "ValidationFailed"
    assert remote(rpc.resend, item["id"], OPERATOR).exc_type == "Conflict"   # only failed ones
    assert remote(rpc.resend, 10**12, OPERATOR).exc_type == "NotFound"
    assert remote(rpc.resend, item["id"], {}).exc_type == "Forbidden"
    page = rpc.list_notifications({"limit": 1})
    assert len(page["items"]) == 1 and page["next_cursor"]


def test_partner_credit_private_message(notifier, rpc, publish, db):
    """L5: orders' `partner_credited` event becomes one message in the partner's inbox, whatever runs twice."""
    partner = uuid.uuid4().int % 10**6
    order_id = factories.order()["id"]
    envelope = events.envelope(events.ORDERS, events.PARTNER_CREDITED, {
        "partner_account_id": partner, "partner_id": 3, "partner_code": "P%d" % partner, "order_id": order_id,
        "amount": "1.25", "currency": "USDT", "balance": "10.5", "percent": "0.5", "base": "amount_out",
        "rule": "partner", "language": "en", "email": "partner@example.com"})
    publish(envelope)
    publish(envelope)                                                         # delivered twice
    replay = events.envelope(events.ORDERS, events.PARTNER_CREDITED, dict(envelope["data"]))
    publish(replay)                                                           # the same credit, a new event id
    owner = "partner:%s" % partner
    inbox = eventually(lambda: (m := rpc.list_messages(owner)) and m["items"] and m, message="L5 in the inbox")
    eventually(lambda: db.fetchone("SELECT count(*) AS n FROM processed_events WHERE consumer = "
                                   "'notifier.handle_partner_credited' AND event_id IN (%s, %s)",
                                   (envelope["event_id"], replay["event_id"]))["n"] == 2)
    assert inbox["unread"] == 1 and len(inbox["items"]) == 1
    message = inbox["items"][0]
    assert "1.25 USDT" in message["body"] and "10.5 USDT" in message["body"] and message["kind"] == "L5"
    assert message["order_id"] == order_id
    assert rpc.mark_read("partner:someone-else", [message["id"]]) == {"marked": 0}
    assert rpc.mark_read(owner, [message["id"]]) == {"marked": 1}
    assert rpc.mark_read(owner, [message["id"]]) == {"marked": 0}
    assert rpc.list_messages(owner)["unread"] == 0
    row = db.fetchone("SELECT * FROM notifications WHERE recipient = %s", (owner,))
    assert (row["channel"], row["status"], row["kind"]) == ("inbox", "sent", "L5")
