"""`security_change` from orders, payments and the rate engine (a change that moves money,
libs/contracts/security.py) becomes one alert letter to the admin address and one SMS to the admin phone where SMS
is on, whatever is delivered twice, and whatever kinds of the matrix are switched off (docs/security.md, "Step-up
and alerts")."""
import uuid

import pytest

from libs.contracts import events, security
from tests.conftest import eventually
from tests.interface.notifier.test_notifier_stuck_work import publish

STAFF = {"name": "mallory", "role": "admin", "ip": "203.0.113.9"}


def change(source, action, detail):
    return events.envelope(source, events.SECURITY_CHANGE, security.change_data(STAFF, action, detail))


def test_each_change_is_one_letter_and_one_sms_also_when_delivered_twice(notifier, devsmtp, twilio, db, settings):
    s = settings(sms_enabled=True, enabled_kinds=[])     # every kind of the matrix off: no toggle for alerts
    account = change("orders", "currency_update", {"code": "USDT", "changes": {"account": "EVIL-1"},
                                                   "before": {"account": "GOOD-1"}})
    payout = change("payments", "resolve_payout", {"outcome": "failed", "note": "checked"})
    for _ in range(2):
        publish("orders", account)
        publish("payments", payout)
    got = eventually(lambda: len(devsmtp.letters(s["admin_email"])) >= 2 and devsmtp.letters(s["admin_email"]),
                     message="two alert letters")
    subjects = sorted(str(m["Subject"]) for m in got)
    assert any("payment account" in x and "mallory" in x for x in subjects), subjects
    assert any("payout was resolved by hand" in x for x in subjects), subjects
    body = " ".join(m.get_body(("plain",)).get_content() for m in got)
    assert "GOOD-1" in body and "EVIL-1" in body and "203.0.113.9" in body
    eventually(lambda: len(twilio.sent_to(s["admin_phone"])) == 2, message="two SMS to the admin phone")
    eventually(lambda: db.fetchone("SELECT count(*) AS n FROM processed_events WHERE event_id IN (%s, %s)",
                                   (account["event_id"], payout["event_id"]))["n"] == 2)
    rows = db.fetchall("SELECT channel FROM notifications WHERE kind = 'ALERT' AND recipient IN (%s, %s)",
                       (s["admin_email"], s["admin_phone"]))
    assert sorted(r["channel"] for r in rows) == ["email", "email", "sms", "sms"]
    assert len(devsmtp.letters(s["admin_email"])) == 2 and len(twilio.sent_to(s["admin_phone"])) == 2


def test_the_admins_own_addresses_get_every_alert_too(notifier, rpc, devsmtp, db, settings):
    s = settings()
    own = ["own-%s@example.com" % uuid.uuid4().hex[:8] for _ in range(2)]
    try:
        assert rpc.set_alert_recipients(own + own[:1]) == {"changed": True}
        assert rpc.set_alert_recipients(list(reversed(own))) == {"changed": False}   # same set: nothing to do
        with pytest.raises(Exception) as bad:
            rpc.set_alert_recipients(["not an address"])
        assert "ValidationFailed" in type(bad.value).__name__ or "invalid" in str(bad.value)
        publish("orders", change("orders", "commission_update", {"after": {"percent": "99"}}))
        for to in [s["admin_email"]] + own:
            eventually(lambda: devsmtp.letters(to), message="alert to %s" % to)
    finally:
        rpc.set_alert_recipients([])


def test_a_rate_engine_change_from_the_rates_source_is_alerted(notifier, devsmtp, db, settings):
    s = settings(enabled_kinds=[])
    saved = change("rates", "formula_save", {"direction_id": 7, "version": 2,
                                             "before": {"expression": "cbr.USD"},
                                             "after": {"expression": "markup(cbr.USD, 40)"}})
    publish("rates", saved)
    publish("rates", saved)
    got = eventually(lambda: devsmtp.letters(s["admin_email"]), message="the formula alert")
    assert "rate formula" in str(got[0]["Subject"]) and "mallory" in str(got[0]["Subject"])
    body = got[0].get_body(("plain",)).get_content()
    assert "markup(cbr.USD, 40)" in body and "direction_id: 7" in body
    eventually(lambda: db.fetchone("SELECT count(*) AS n FROM processed_events WHERE event_id = %s",
                                   (saved["event_id"],))["n"] == 1)
    assert len(devsmtp.letters(s["admin_email"])) == 1
