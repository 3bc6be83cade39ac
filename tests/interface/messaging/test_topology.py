"""Queues exist before publishers run (docs/reliability.md, P10 and pitfall N3), and an event nobody subscribes to is
recorded as unrouted instead of retried forever."""
import pytest

from .harness import metric, wait_until

pytestmark = pytest.mark.timeout(30)


def test_event_for_a_consumer_that_never_started_waits_in_its_queue(harness):
    s = harness.subscribe("order_created")
    assert harness.depth(s.queue) is None  # nobody declared anything yet, and no consumer will run for now

    event = harness.write_event("order_created", {"order": 7})
    relay = harness.relay()
    assert relay.run_once() == 1  # the relay declares every subscription of the topology, then publishes

    [row] = harness.outbox_rows()
    assert row["published_at"] is not None and row["routed"] is True
    assert harness.depth(s.queue) == 1  # kept for the consumer, not dropped
    for q in s.retry_queues + [s.dlq]:
        assert harness.depth(q) == 0, q

    harness.start_consumer(s)  # later
    wait_until(lambda: harness.effects(event["event_id"]), what="the effect once the consumer runs")
    assert [c["outcome"] for c in s.calls] == ["done"]
    wait_until(lambda: harness.depth(s.queue) == 0, what="the event acked")


def test_event_nobody_subscribes_to_is_marked_unrouted_not_retried(harness):
    s = harness.subscribe("order_created")  # a subscriber to another event type of the same source
    unrouted_before = metric("exchanger_outbox_unrouted_total", source=harness.source)
    lonely = harness.write_event("order_archived", {"order": 8})
    routed = harness.write_event("order_created", {"order": 9})

    relay = harness.relay()
    assert relay.run_once() == 2
    rows = {str(r["id"]): r for r in harness.outbox_rows()}
    assert rows[lonely["event_id"]]["routed"] is False
    assert rows[lonely["event_id"]]["published_at"] is not None
    assert rows[lonely["event_id"]]["attempts"] == 0
    assert rows[routed["event_id"]]["routed"] is True
    assert metric("exchanger_outbox_unrouted_total", source=harness.source) == unrouted_before + 1

    assert relay.run_once() == 0  # done with it: not picked up again
    [msg] = harness.take_all(s.queue)
    assert msg.properties["message_id"] == routed["event_id"]


def test_a_subscribed_event_that_comes_back_unrouted_stays_pending_until_its_queue_is_back(harness):
    """Defect: an event returned by the broker was marked published, even when a handler subscribes to it (its
    queue deleted, or a broker reset since the relay declared the topology): the event was lost."""
    s = harness.subscribe("order_created")
    relay = harness.relay()
    relay.prepare()                                # the topology is declared once...
    harness._channel().queue_delete(s.queue)       # ...then the queue disappears (an operator, a broker reset)
    event = harness.write_event("order_created", {"order": 10})

    assert relay.run_once() == 1
    [row] = harness.outbox_rows()
    assert row["published_at"] is None and row["attempts"] == 1   # not lost: still pending
    assert "returned" in row["last_error"]

    assert relay.run_once() == 1                   # declares the topology again, then publishes
    [row] = harness.outbox_rows()
    assert row["published_at"] is not None and row["routed"] is True
    [msg] = harness.take_all(s.queue)
    assert msg.properties["message_id"] == event["event_id"]
