"""The rate engine's `directions_frozen` becomes one letter to the admin address, however often it is delivered
(docs/rates.md, "Guards")."""
from libs.contracts import events
from tests.conftest import eventually
from tests.interface.notifier.test_notifier_stuck_work import publish


def test_frozen_directions_are_one_admin_letter_also_when_delivered_twice(notifier, devsmtp, db, settings):
    admin = settings()["admin_email"]
    envelope = events.envelope(events.RATES, events.DIRECTIONS_FROZEN, {"items": [
        {"direction_id": 41, "pair": "USDT → RUB", "code": "stale",
         "reason": "no fresh value: binance.USDTRUB.bid (older than its source's max age of 60 s)"},
        {"direction_id": 42, "pair": "BTC → RUB", "code": "jump",
         "reason": "the rate moved 12.5% from the last accepted 100 to 112.5 (limit 10%)"}]})
    for _ in range(2):
        publish(events.RATES, envelope)

    def ours():
        # this event's letter (another test's rate engine may have announced its own freeze meanwhile)
        return [m for m in devsmtp.letters(admin) if "#41 USDT → RUB" in m.get_body(("plain",)).get_content()]
    [mail] = eventually(ours, message="the admin letter")
    assert str(mail["Subject"]).endswith("Rates: 2 directions stopped taking orders")
    body = mail.get_body(("plain",)).get_content()
    assert "#41 USDT → RUB: no fresh value: binance.USDTRUB.bid" in body and "#42 BTC → RUB: the rate moved" in body
    eventually(lambda: db.fetchone("SELECT count(*) AS n FROM processed_events WHERE event_id = %s",
                                   (envelope["event_id"],))["n"] == 1)
    rows = db.fetchall("SELECT * FROM notifications WHERE kind = 'ALERT' AND recipient = %s AND dedupe_key LIKE %s",
                       (admin, "%%rates-frozen:%s%%" % envelope["event_id"]))
    assert len(rows) == 1 and len(ours()) == 1
