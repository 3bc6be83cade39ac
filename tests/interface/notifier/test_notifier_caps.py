"""No free letters or SMS for a script (docs/security.md, "Throttles and lockout"): at most the cap of letters to
one customer address per hour across order and account letters; admin SMS over the burst limit are held back and
summarised in one SMS at the window's end; one-time links never stay in the send log."""
import datetime
import uuid

import eventlet

from libs.contracts import events
from tests.conftest import eventually
from tests.interface.notifier import factories
from tests.interface.notifier.conftest import text_of, unique_email


def account_letter(event_type, email, url_field, link):
    return events.envelope(events.ORDERS, event_type, {
        "account_id": 7, "email": email, "language": "en", "token_id": int(uuid.uuid4().int % 10**9),
        url_field: link, "expires_at": (datetime.datetime.now(datetime.timezone.utc)
                                        + datetime.timedelta(hours=1)).isoformat()})


def rows_to(db, email):
    return db.fetchall("SELECT kind, status, last_error FROM notifications WHERE recipient = %s ORDER BY id", (email,))


def test_letters_to_one_address_stop_at_the_cap_across_order_and_account_letters(
        start_notifier, publish, db, settings, devsmtp):
    settings()
    start_notifier(NOTIFIER_LETTERS_PER_RECIPIENT_HOUR=3)
    email = unique_email("capped")
    for _ in range(4):
        publish(factories.created(factories.order("manual", email=email)))
    publish(account_letter(events.PASSWORD_RESET_REQUESTED, email, "reset_url",
                           "https://exchanger.test/account/reset?token=" + uuid.uuid4().hex))
    eventually(lambda: len(rows_to(db, email)) == 5, message="all five decided")
    rows = rows_to(db, email)
    assert sum(r["status"] != "capped" for r in rows) == 3, rows
    assert all("letter cap" in r["last_error"] for r in rows if r["status"] == "capped")
    eventually(lambda: len(devsmtp.letters(to=email)) == 3, message="three letters delivered")
    eventlet.sleep(0.5)
    assert len(devsmtp.letters(to=email)) == 3


def test_a_burst_of_admin_sms_is_summarised_in_one_sms(start_notifier, publish, db, settings, twilio):
    phone = settings(sms_enabled=True)["admin_phone"]
    start_notifier(NOTIFIER_ADMIN_SMS_PER_WINDOW=2, NOTIFIER_ADMIN_SMS_WINDOW_SECONDS=4)
    for _ in range(6):  # a manual order texts the admin (S3)
        publish(factories.created(factories.order("manual", email=unique_email())))

    def decided():
        return db.fetchall("SELECT kind, status, body_text FROM notifications WHERE recipient = %s AND "
                           "audience = 'admin'", (phone,))
    eventually(lambda: sum(r["kind"] == "S3" for r in decided()) == 6, message="six admin SMS decided")
    summaries = [r for r in decided() if r["kind"] == "SMS_SUMMARY"]
    assert summaries, decided()
    eventually(lambda: any("held back" in m["body"] for m in twilio.sent_to(phone)), timeout=20,
               message="the summary SMS at the end of the window")
    held = sum(r["status"] == "capped" for r in decided())
    individual = [m for m in twilio.sent_to(phone) if "held back" not in m["body"]]
    assert held >= 2 and len(individual) == 6 - held
    # every held-back SMS is counted in a summary of its window
    eventually(lambda: all(r["status"] == "sent" for r in decided() if r["kind"] == "SMS_SUMMARY"), timeout=20)
    counted = sum(int(m["body"].split(": ", 1)[1].split()[0]) for m in twilio.sent_to(phone)
                  if "held back" in m["body"])
    assert counted == held


def test_a_reset_link_reaches_the_customer_but_not_the_send_log(notifier, publish, db, settings, devsmtp):
    settings()
    email = unique_email("reset")
    link = "https://exchanger.test/account/reset?token=" + uuid.uuid4().hex
    publish(account_letter(events.PASSWORD_RESET_REQUESTED, email, "reset_url", link))
    letter = eventually(lambda: devsmtp.letters(to=email), message="the reset letter")[0]
    assert link in text_of(letter)
    row = eventually(lambda: (r := db.fetchone("SELECT * FROM notifications WHERE recipient = %s", (email,)))
                     and r["status"] == "sent" and r)
    assert link not in row["body_text"] and link not in (row["body_html"] or "")
    assert "[one-time link]" in row["body_text"] and row["secret_link"] is None
