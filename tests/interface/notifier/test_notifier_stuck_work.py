"""`stuck_work_found` from payments and from orders becomes one letter to the admin address each, whatever is
delivered twice (docs/architecture.md, "Stuck work")."""
import json

from libs.amqp_publish import ConfirmingPublisher
from libs.contracts import events, stuck
from tests.conftest import TEST_AMQP_URI, eventually


def publish(source, envelope):
    publisher = ConfirmingPublisher(TEST_AMQP_URI)
    try:
        publisher.declare_exchange("%s.events" % source)
        assert publisher.publish_batch([{"message_id": envelope["event_id"], "exchange": "%s.events" % source,
                                         "routing_key": envelope["event_type"],
                                         "body": json.dumps(envelope)}]) == ["ok"]
    finally:
        publisher.close()


def found(source, kind, item_id):
    item = stuck.item(kind, item_id, None, 4000, "%s %s is stuck" % (kind, item_id))
    return events.envelope(source, events.STUCK_WORK_FOUND, {"service": source, "items": [item],
                                                             "counts": {kind: 1}})


def test_each_services_announcement_is_one_admin_letter_also_when_delivered_twice(notifier, devsmtp, db, settings):
    admin = settings()["admin_email"]
    from_payments = found("payments", "payout_in_doubt", 9101)
    from_orders = found("orders", "withdrawal_not_paid", 9102)
    for _ in range(2):
        publish("payments", from_payments)
        publish("orders", from_orders)

    def letters():
        got = devsmtp.letters(admin)
        return len(got) >= 2 and got
    got = eventually(letters, message="two admin letters")
    subjects = sorted(str(m["Subject"]) for m in got)
    assert any("Stuck work in orders: 1 new item" in s for s in subjects)
    assert any("Stuck work in payments: 1 new item" in s for s in subjects)
    bodies = " ".join(m.get_body(("plain",)).get_content() for m in got)
    assert "payout_in_doubt #9101" in bodies and "withdrawal_not_paid #9102, 1h06m old" in bodies
    eventually(lambda: db.fetchone("SELECT count(*) AS n FROM processed_events WHERE event_id IN (%s, %s)",
                                   (from_payments["event_id"], from_orders["event_id"]))["n"] == 2)
    rows = db.fetchall("SELECT * FROM notifications WHERE kind = 'ALERT' AND recipient = %s", (admin,))
    assert len(rows) == 2 and len(devsmtp.letters(admin)) == 2
