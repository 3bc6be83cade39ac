"""End to end, faults: SMTP outage, Twilio 500/429/hang, a redelivered event, forged / duplicated / out-of-order
status callbacks. All processes up as `make run` starts them."""
import uuid

import pytest
import requests

from libs.contracts.notifier import KINDS
from tests.conftest import eventually
from tests.e2e.notifier_support import (Mail, consumed, log, new_order, publish_to_notifier, put_settings,
                                        settled, signed_callback, standin, unique_phone)


@pytest.fixture
def admin(system, admin_token):
    email_, phone = "admin-%s@example.com" % uuid.uuid4().hex[:10], unique_phone()
    twilio = standin(system)
    put_settings(system, admin_token, admin_email=email_, admin_phone=phone, sms_enabled=True, admin_language="en",
                 enabled_kinds=list(KINDS))
    # The settings change is itself texted to the new admin phone (docs/security.md): let it through before a
    # test scripts that phone's faults.
    eventually(lambda: twilio.sent_to(phone), timeout=30, message="settings alert SMS")
    return {"email": email_, "phone": phone}


def notification(system, token, order_id, kind):
    rows = log(system, token, order_id=order_id, kind=kind)
    return rows[0] if rows else None


def metric(system, name, **labels):
    """A sample from the notifier's own /metrics endpoint (0 when the series does not exist yet)."""
    text = requests.get("http://127.0.0.1:%s/metrics" % system.env["NOTIFIER_METRICS_PORT"], timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + "{") and all(('%s="%s"' % kv) in line for kv in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_smtp_stopped_then_restarted_letter_arrives_once(system, admin_token, directions, admin):
    mail = Mail(system)
    mail.stop()
    try:
        order = new_order(system, directions["manual"])
        row = eventually(lambda: (n := notification(system, admin_token, order["id"], "L1")) and
                         n["attempts"] >= 2 and n, timeout=20, message="retries while SMTP is down")
        assert row["status"] in ("pending", "sending") and "SMTP unavailable" in row["last_error"]
        assert mail.letters(order["email"]) == []
        # orders never waited for the mail: the request page answers and the operator can act
        assert system.api("GET", "/api/v1/orders/%s" % order["token"]).status_code == 200
    finally:
        mail.start()
    eventually(lambda: notification(system, admin_token, order["id"], "L1")["status"] == "sent", timeout=20,
               message="sent after the outage")
    eventually(lambda: settled(system, admin_token, [order["id"]]), timeout=20)
    assert mail.kinds(order["email"]) == ["L1"]
    assert mail.kinds(admin["email"], order["id"]) == ["L8"]


def test_twilio_500_429_hang_bounded_then_failed_then_resend(system, admin_token, directions, admin):
    twilio = standin(system)
    twilio.script("500", "429", "hang", to=admin["phone"])
    failed_before = metric(system, "exchanger_notifications_failed_total", channel="sms", kind="S3")
    order = new_order(system, directions["manual"])
    failed = eventually(lambda: (n := notification(system, admin_token, order["id"], "S3")) and
                        n["status"] == "failed" and n, timeout=30, message="S3 failed after bounded retries")
    assert failed["attempts"] == 3 and failed["max_attempts"] == 3
    modes = [r["mode"] for r in twilio.requests if r["to"] == admin["phone"] and "#%s:" % order["id"] in r["body"]]
    assert modes == ["500", "429", "hang"]
    about_order = lambda: [m for m in twilio.sent_to(admin["phone"]) if "#%s:" % order["id"] in m["body"]]  # noqa: E731
    assert about_order() == []
    assert metric(system, "exchanger_notifications_failed_total", channel="sms", kind="S3") == failed_before + 1
    detail = system.api("GET", "/api/v1/admin/notifications/%s" % failed["id"], token=admin_token).json()
    assert [a["outcome"] for a in detail["attempts_log"]] == ["retry", "retry", "failed"]
    # the letters of the same order went out meanwhile: SMS trouble blocks nothing else
    assert notification(system, admin_token, order["id"], "L1")["status"] == "sent"

    resent = system.api("POST", "/api/v1/admin/notifications/%s/resend" % failed["id"], token=admin_token, json={})
    assert resent.status_code == 200, resent.text
    eventually(lambda: notification(system, admin_token, order["id"], "S3")["status"] == "sent", timeout=20)
    assert len(about_order()) == 1
    again = system.api("POST", "/api/v1/admin/notifications/%s/resend" % failed["id"], token=admin_token, json={})
    assert again.status_code == 409
    assert system.sql("SELECT count(*) AS n FROM gateway.audit_log WHERE action = 'notification.resend' "
                      "AND detail->>'notification_id' = %s", (str(failed["id"]),))[0]["n"] == 2


def test_the_same_event_delivered_twice_gives_one_letter(system, admin_token, directions, admin):
    mail = Mail(system)
    order = new_order(system, directions["manual"])
    eventually(lambda: consumed(system, order["id"]), timeout=20)
    eventually(lambda: settled(system, admin_token, [order["id"]]), timeout=20)
    # the very event orders published, delivered again (twice)
    payload = system.sql("SELECT payload FROM orders.outbox WHERE aggregate_id = %s AND event_type = "
                         "'order_created'", (str(order["id"]),))[0]["payload"]
    publish_to_notifier(payload)
    publish_to_notifier(payload)
    eventually(lambda: system.sql(
        "SELECT count(*) AS n FROM notifier.processed_events WHERE event_id = %s", (payload["event_id"],)
    )[0]["n"] == 1)
    probe = new_order(system, directions["manual"])  # consumed after the duplicates: they have been handled
    eventually(lambda: consumed(system, probe["id"]), timeout=20)
    assert mail.kinds(order["email"]) == ["L1"]
    assert mail.kinds(admin["email"], order["id"]) == ["L8"]
    assert len(log(system, admin_token, order_id=order["id"])) == 3  # L1, L8, S3


def test_forged_duplicated_and_out_of_order_status_callbacks(system, admin_token, directions, admin):
    twilio = standin(system)
    order = new_order(system, directions["manual"])
    sms = eventually(lambda: (n := notification(system, admin_token, order["id"], "S3")) and
                     n["status"] == "sent" and n, timeout=20)
    sid = sms["provider_id"]
    # the stand-in, like Twilio, called back `sent` then `delivered`, signed: applied in order
    eventually(lambda: notification(system, admin_token, order["id"], "S3")["provider_status"] == "delivered",
               timeout=20, message="delivered")
    assert [c[2] for c in twilio.callbacks_sent if c[1]["MessageSid"] == sid] == [200, 200]

    params = {"MessageSid": sid, "MessageStatus": "failed", "AccountSid": system.env["TWILIO_ACCOUNT_SID"]}
    refused_before = bad_signatures(system)
    forged = signed_callback(system, params, token="not-the-auth-token")
    assert forged.status_code == 403
    unsigned = requests.post(system.url + "/api/v1/webhooks/twilio", data=params, timeout=10)
    assert unsigned.status_code == 403
    wrong_url = signed_callback(system, params, url="http://evil.example/api/v1/webhooks/twilio")
    assert wrong_url.status_code == 403
    late = signed_callback(system, dict(params, MessageStatus="sent"))            # out of order
    assert late.status_code == 200 and late.json()["outcome"] == "duplicate"
    older = signed_callback(system, dict(params, MessageStatus="queued"))         # older than delivered
    assert older.status_code == 200 and older.json()["outcome"] == "stale"
    dup = signed_callback(system, dict(params, MessageStatus="delivered"))        # duplicate
    assert dup.status_code == 200 and dup.json()["outcome"] == "duplicate"
    assert notification(system, admin_token, order["id"], "S3")["provider_status"] == "delivered"
    # Refused callbacks are counted in a metric, not written to the audit log one row each (a flood would fill it).
    assert bad_signatures(system) >= refused_before + 3
    assert system.sql("SELECT count(*) AS n FROM gateway.audit_log WHERE action = 'webhook.twilio'")[0]["n"] == 0


def bad_signatures(system):
    text = requests.get(system.url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("exchanger_twilio_bad_signatures_total{"))
