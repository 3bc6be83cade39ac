"""Batch consumption (libs/messaging.py BatchEventHandler, libs/inbox.py claim_batch): many events in one
transaction with one inbox insert, each effect exactly once, and a poison message retried and dead-lettered
alone while the rest of its batch goes through."""
import pytest

from libs.contracts import events

from .harness import metric, wait_until

pytestmark = pytest.mark.timeout(40)


def test_a_burst_is_handled_in_batches_each_event_once(harness):
    s = harness.subscribe("order_created", batch=True)
    harness.declare(s)
    burst = [events.envelope(harness.source, "order_created", {"n": n}) for n in range(120)]
    assert harness.publish("order_created", burst) == ["ok"] * 120   # queued before the consumer starts
    harness.start_consumer(s)

    wait_until(lambda: len(harness.effects()) == 120, timeout=20, what="120 effects")
    # Fewer transactions than events: the prefetched burst arrived in batches, none above the size bound.
    assert len(s.batches) < 120 / 4, [len(b) for b in s.batches]
    assert max(len(b) for b in s.batches) <= 100
    for e in burst:
        assert len(harness.effects(e["event_id"])) == 1
        assert len(harness.processed(e["event_id"])) == 1
    assert harness.depth(s.queue) == 0 and harness.depth(s.dlq) == 0


def test_a_duplicate_inside_a_batch_and_a_redelivery_have_one_effect(harness):
    s = harness.subscribe("order_created", batch=True)
    harness.declare(s)
    event = events.envelope(harness.source, "order_created", {"n": 1})
    other = events.envelope(harness.source, "order_created", {"n": 2})
    duplicates_before = metric("exchanger_event_duplicates_total", consumer=s.consumer)
    assert harness.publish("order_created", [event, event, other]) == ["ok"] * 3
    harness.start_consumer(s)
    wait_until(lambda: len(harness.effects()) == 2, what="two effects")
    assert harness.publish("order_created", [event]) == ["ok"]           # a redelivery after the batch committed
    wait_until(lambda: len(s.calls_for(event["event_id"])) == 3, what="the redelivery seen")
    wait_until(lambda: harness.depth(s.queue) == 0, what="queue drained")
    assert len(harness.effects(event["event_id"])) == 1
    assert len(harness.effects(other["event_id"])) == 1
    assert metric("exchanger_event_duplicates_total", consumer=s.consumer) == duplicates_before + 2


def test_a_poison_message_goes_alone_to_the_dlq_and_its_batch_goes_through(harness):
    s = harness.subscribe("order_created", max_attempts=3, base_delay_ms=200, batch=True)
    harness.declare(s)
    poison = events.envelope(harness.source, "order_created", {"poison": True})
    good = [events.envelope(harness.source, "order_created", {"n": n}) for n in range(30)]
    assert harness.publish("order_created", good[:15] + [poison] + good[15:]) == ["ok"] * 31
    harness.start_consumer(s)

    wait_until(lambda: harness.depth(s.dlq) == 1, timeout=20, what="the poison message in the DLQ")
    for e in good:
        assert len(harness.effects(e["event_id"])) == 1, e
    assert harness.effects(poison["event_id"]) == []
    # The batch that held it failed once; then the poison ran alone, three attempts in all.
    alone = [b for b in s.batches if b == [poison["event_id"]]]
    assert len(alone) == 3, s.batches
    for q in [s.queue] + s.retry_queues:
        assert harness.depth(q) == 0, q


def test_a_transient_failure_of_one_event_retries_only_that_event(harness):
    s = harness.subscribe("order_created", max_attempts=3, base_delay_ms=200, batch=True)
    harness.declare(s)
    flaky = events.envelope(harness.source, "order_created", {"fail_times": 2})
    good = [events.envelope(harness.source, "order_created", {"n": n}) for n in range(10)]
    assert harness.publish("order_created", [flaky] + good) == ["ok"] * 11
    harness.start_consumer(s)
    wait_until(lambda: len(harness.effects()) == 11, timeout=20, what="all effects, the flaky one after retries")
    assert len(harness.effects(flaky["event_id"])) == 1
    assert harness.depth(s.dlq) == 0
