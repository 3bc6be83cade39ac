"""Transactional outbox and relay under crashes (docs/reliability.md, P8, P9, T3, T4).

The relay runs as its own process (`python -m libs.outbox`) and is killed at its crash points; the consumer is a
nameko service whose `reliable_event_handler` records the event in the inbox in the same transaction as its effect.
"""
import select

import psycopg2
import pytest

from libs import outbox

from .harness import DATABASE_URL, wait_until

pytestmark = pytest.mark.timeout(45)


def test_crash_between_commit_and_publish_then_restart_delivers_once(harness):
    s = harness.subscribe("order_paid")
    harness.declare(s)  # the queue exists (as at deploy), the consumer is not running yet

    event = harness.write_event("order_paid", {"order": 1, "amount": "10.00"}, state=("order-1", "paid"))
    assert harness.db.fetchone("SELECT value FROM state WHERE id = 'order-1'")["value"] == "paid"

    crashed = harness.run_relay_process(crash_at="relay_before_publish")
    assert harness.wait_exit(crashed) == 137, harness.relay_log(crashed)
    assert "CRASH_AT=relay_before_publish" in harness.relay_log(crashed)
    # Committed, not published: the event is still pending and nothing reached the broker.
    [row] = harness.outbox_rows()
    assert str(row["id"]) == event["event_id"] and row["published_at"] is None
    assert harness.depth(s.queue) == 0

    harness.start_consumer(s)
    relay = harness.run_relay_process()  # normally: run_forever
    wait_until(lambda: harness.effects(event["event_id"]), timeout=20, what="the consumer's effect")
    wait_until(lambda: harness.outbox_rows()[0]["published_at"] is not None, what="the row marked published")
    assert relay.poll() is None, harness.relay_log(relay)  # still running, not crashed

    [row] = harness.outbox_rows()
    assert row["routed"] is True and row["attempts"] == 0
    [effect] = harness.effects()
    assert str(effect["event_id"]) == event["event_id"]
    assert effect["data"] == {"order": 1, "amount": "10.00"}
    assert len(harness.processed(event["event_id"])) == 1
    assert [c["outcome"] for c in s.calls] == ["done"]
    assert harness.depth(s.queue) == 0


def test_crash_after_publish_before_mark_publishes_twice_and_the_inbox_dedupes(harness):
    s = harness.subscribe("order_paid")
    harness.declare(s)
    event = harness.write_event("order_paid", {"order": 2}, state=("order-2", "paid"))

    crashed = harness.run_relay_process(crash_at="relay_after_publish")
    assert harness.wait_exit(crashed) == 137, harness.relay_log(crashed)
    # Published and confirmed, but the "published" mark died with the process.
    assert harness.depth(s.queue) == 1
    [row] = harness.outbox_rows()
    assert row["published_at"] is None

    again = harness.run_relay_process(once=True)
    assert harness.wait_exit(again) == 0, harness.relay_log(again)
    assert harness.depth(s.queue) == 2  # the same event is at the broker twice
    [row] = harness.outbox_rows()
    assert row["published_at"] is not None and row["routed"] is True

    harness.start_consumer(s)
    wait_until(lambda: len(s.calls_for(event["event_id"])) == 2 and all(c["outcome"] for c in s.calls),
               what="both deliveries handled")
    assert sorted(c["outcome"] for c in s.calls) == ["done", "duplicate"]
    assert len(harness.effects()) == 1
    [processed] = harness.processed()
    assert processed["consumer"] == s.consumer and str(processed["event_id"]) == event["event_id"]
    wait_until(lambda: harness.depth(s.queue) == 0, what="both deliveries acked")


def test_rolled_back_transaction_leaves_no_event(harness):
    s = harness.subscribe("order_paid")
    listener = psycopg2.connect(DATABASE_URL)
    listener.autocommit = True
    try:
        with listener.cursor() as cur:
            cur.execute("LISTEN %s" % outbox.notify_channel(harness.schema))

        class Boom(Exception):
            pass

        with pytest.raises(Boom):
            with harness.db.transaction() as cur:
                cur.execute("INSERT INTO state (id, value) VALUES ('order-3', 'paid')")
                phantom = outbox.write_event(cur, harness.source, "order_paid", {"order": 3},
                                             schema=harness.schema)
                raise Boom()
        assert harness.outbox_rows() == []
        assert harness.db.fetchall("SELECT * FROM state") == []

        relay = harness.relay()
        assert relay.run_once() == 0  # nothing to publish (and the relay declared the queue)
        assert harness.depth(s.queue) == 0

        # Control: a committed event goes through the same path. Notifications arrive in commit order, so once
        # the committed one is here, a notification of the rolled-back one would have come first.
        real = harness.write_event("order_paid", {"order": 4}, state=("order-4", "paid"))

        def notified():
            if select.select([listener], [], [], 0.1)[0]:
                listener.poll()
            return listener.notifies

        wait_until(notified, what="the NOTIFY of the committed event")
        assert len(listener.notifies) == 1
        assert relay.run_once() == 1
        messages = harness.take_all(s.queue)
        assert [m.properties["message_id"] for m in messages] == [real["event_id"]]
        assert phantom["event_id"] != real["event_id"]
    finally:
        listener.close()
