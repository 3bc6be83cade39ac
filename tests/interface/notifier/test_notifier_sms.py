"""SMS through the real twilio client against the Twilio stand-in: only when enabled, S5 only with opt-in,
bounded retries on 500/429/hang, no duplicate when Twilio accepted but answered 500, status callbacks."""
import uuid

import eventlet
from prometheus_client import REGISTRY

from services.notifier import dependencies
from tests.conftest import eventually
from tests.interface.notifier import factories
from tests.interface.notifier.conftest import unique_email, unique_phone

ADMIN = {"name": "op1", "role": "operator", "ip": "10.0.0.1"}


def row(db, order_id, kind):
    return db.fetchone("SELECT * FROM notifications WHERE order_id = %s AND kind = %s", (order_id, kind))


def test_no_sms_while_sms_is_disabled(notifier, publish, twilio, db, settings):
    admin_phone = settings(sms_enabled=False)["admin_phone"]
    customer = unique_phone()
    order = factories.order("manual", email=unique_email(), phone=customer, sms_opt_in=True)
    publish(factories.created(order))
    _, event = factories.changed(order, "processing", "completed", action="finalize")
    publish(event)
    eventually(lambda: row(db, order["id"], "L3") and row(db, order["id"], "L1"), message="letters queued")
    eventlet.sleep(0.3)
    assert twilio.sent_to(admin_phone) == [] and twilio.sent_to(customer) == []
    assert db.fetchall("SELECT id FROM notifications WHERE order_id = %s AND channel = 'sms'", (order["id"],)) == []


def test_sms_when_enabled_and_s5_only_with_opt_in(notifier, publish, twilio, db, settings):
    admin_phone = settings(sms_enabled=True)["admin_phone"]
    opted, declined = unique_phone(), unique_phone()
    order = factories.order("manual", email=unique_email(), phone=opted, sms_opt_in=True)
    other = factories.order("semi_auto", email=unique_email(), phone=declined, sms_opt_in=False)
    publish(factories.created(order))
    for o in (order, other):
        _, event = factories.changed(o, "processing" if o is order else "paid", "completed", action="finalize")
        publish(event)
    eventually(lambda: len(twilio.sent_to(opted)) == 1, message="S5 to the customer who opted in")
    eventually(lambda: [m for m in twilio.sent_to(admin_phone) if str(order["id"]) in m["body"]],
               message="S3 to the admin phone")
    s5 = twilio.sent_to(opted)[0]
    assert s5["from"] == "+15005550006" and "completed" in s5["body"] and "106.465 USDT" in s5["body"]
    request = next(r for r in twilio.requests if r["to"] == opted)
    assert request["status_callback"] == "https://exchanger.test/api/v1/webhooks/twilio"
    sent = eventually(lambda: (r := row(db, order["id"], "S5")) and r["status"] == "sent" and r)
    assert (sent["provider_id"], sent["provider_status"]) == (s5["sid"], "queued")
    eventually(lambda: row(db, other["id"], "L3"))
    eventlet.sleep(0.3)
    assert twilio.sent_to(declined) == [] and row(db, other["id"], "S5") is None


def test_twilio_500_429_then_hang_bounded_retries_then_failed_and_resend(
        notifier, publish, twilio, db, settings, devsmtp, rpc):
    s = settings(sms_enabled=True)
    twilio.script("500", "429", "hang", to=s["admin_phone"])
    failed_before = REGISTRY.get_sample_value("exchanger_notifications_failed_total",
                                              {"channel": "sms", "kind": "S3"}) or 0
    order = factories.order("manual", email=unique_email())
    publish(factories.created(order))
    failed = eventually(lambda: (r := row(db, order["id"], "S3")) and r["status"] == "failed" and r,
                        timeout=20, message="S3 failed after bounded retries")
    assert failed["attempts"] == 3 and "timed out" in failed["last_error"].lower()
    mine = lambda: [m for m in twilio.sent_to(s["admin_phone"]) if "#%s" % order["id"] in m["body"]]  # noqa
    assert [r["mode"] for r in twilio.requests
            if r["to"] == s["admin_phone"] and "#%s" % order["id"] in r["body"]] == ["500", "429", "hang"]
    assert mine() == []
    assert REGISTRY.get_sample_value("exchanger_notifications_failed_total",
                                     {"channel": "sms", "kind": "S3"}) == failed_before + 1
    # order processing was never held up: the letters of the same event went out
    eventually(lambda: devsmtp.letters(order["email"]))
    log = rpc.get_notification(failed["id"])
    assert [a["outcome"] for a in log["attempts_log"]] == ["retry", "retry", "failed"]
    # an operator resends it: now Twilio answers, it goes once
    resent = rpc.resend(failed["id"], ADMIN)
    assert resent["status"] == "pending" and resent["resends"] == 1
    eventually(lambda: row(db, order["id"], "S3")["status"] == "sent", message="resent")
    assert len(mine()) == 1


def test_accepted_but_500_is_not_sent_twice(notifier, publish, twilio, db, settings):
    s = settings(sms_enabled=True)
    twilio.script("accept_500", to=s["admin_phone"])
    order = factories.order("manual", email=unique_email())
    publish(factories.created(order))
    done = eventually(lambda: (r := row(db, order["id"], "S3")) and r["status"] == "sent" and r, timeout=15)
    mine = [m for m in twilio.sent_to(s["admin_phone"]) if "#%s" % order["id"] in m["body"]]
    assert len(mine) == 1
    assert [r["mode"] for r in twilio.requests
            if r["to"] == s["admin_phone"] and "#%s" % order["id"] in r["body"]] == ["accept_500"]
    assert done["provider_id"] == mine[0]["sid"] and done["attempts"] == 2


def test_status_callbacks_duplicates_and_out_of_order(notifier, publish, twilio, db, settings, rpc):
    s = settings(sms_enabled=True)
    order = factories.order("manual", email=unique_email())
    publish(factories.created(order))
    sent = eventually(lambda: (r := row(db, order["id"], "S3")) and r["status"] == "sent" and r)
    sid = sent["provider_id"]
    assert rpc.sms_status_callback(sid, "sent") == {"outcome": "applied"}
    assert rpc.sms_status_callback(sid, "sent") == {"outcome": "duplicate"}
    assert rpc.sms_status_callback(sid, "delivered") == {"outcome": "applied"}
    assert rpc.sms_status_callback(sid, "sending") == {"outcome": "stale"}      # late, older status
    assert rpc.sms_status_callback(sid, "undelivered") == {"outcome": "stale"}  # a second final one
    assert rpc.sms_status_callback(sid, "delivered") == {"outcome": "duplicate"}
    assert row(db, order["id"], "S3")["provider_status"] == "delivered"
    assert rpc.sms_status_callback("SM" + "f" * 32, "delivered") == {"outcome": "unknown"}
    assert s["admin_phone"]


def test_callback_before_the_send_is_committed_is_applied(notifier_config, db):
    """Twilio can call back before we commit `sent`: the stored callback is applied by mark_sent."""
    _, store, _ = dependencies.build(notifier_config, database=db)
    sid = "SM" + uuid.uuid4().hex
    with db.transaction() as cur:
        cur.execute("INSERT INTO notifications (dedupe_key, kind, channel, audience, recipient, language, "
                    "body_text, status, attempts, max_attempts, lease_until) VALUES (%s, 'S4', 'sms', 'admin', "
                    "'+15550000000', 'en', 'x', 'sending', 1, 3, now() + interval '1 minute') RETURNING *",
                    ("test:%s" % sid,))
        claimed = cur.fetchone()
    assert store.sms_status(sid, "delivered") == "unknown"
    store.mark_sent(claimed, sid, "queued")
    assert db.fetchone("SELECT provider_status FROM notifications WHERE id = %s",
                       (claimed["id"],))["provider_status"] == "delivered"
