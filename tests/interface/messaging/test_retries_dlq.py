"""Bounded delayed retries and the dead-letter queue (docs/reliability.md, P11, P12, T14 and pitfall N2)."""
import json

import pytest

from libs.contracts import events
from libs.messaging import ATTEMPT_HEADER, ERROR_HEADER

from .harness import metric, wait_until

pytestmark = pytest.mark.timeout(30)

MAX_ATTEMPTS = 3
BASE_DELAY_MS = 200
DELAYS = [BASE_DELAY_MS / 1000.0 * 2 ** (n - 1) for n in range(1, MAX_ATTEMPTS)]  # 0.2 s, 0.4 s
SLACK = 0.02  # broker TTLs count in whole milliseconds on another clock


def _settled(calls, n):
    return len(calls) == n and all(c["outcome"] for c in calls)


def _assert_delayed(calls):
    """Each redelivery came no earlier than its retry queue's TTL after the failed attempt ended."""
    for delay, before, after in zip(DELAYS, calls, calls[1:]):
        assert after["t"] - before["t_end"] >= delay - SLACK, (delay, before, after)


def test_poison_message_is_dead_lettered_after_max_attempts_while_others_flow(harness):
    s = harness.subscribe("order_paid", max_attempts=MAX_ATTEMPTS, base_delay_ms=BASE_DELAY_MS)
    harness.start_consumer(s)
    dead_before = metric("exchanger_dead_lettered_total", queue=s.queue)
    retries_before = metric("exchanger_event_retries_total", queue=s.queue)

    poison = events.envelope(harness.source, "order_paid", {"poison": True})
    good = [events.envelope(harness.source, "order_paid", {"n": n}) for n in range(5)]
    assert harness.publish("order_paid", [poison] + good) == ["ok"] * 6  # the poison is first in line

    wait_until(lambda: harness.depth(s.dlq) == 1, timeout=15, what="the poison message in the DLQ")
    poison_calls = s.calls_for(poison["event_id"])
    assert len(poison_calls) == MAX_ATTEMPTS and all(c["outcome"] == "error" for c in poison_calls)
    _assert_delayed(poison_calls)

    # The good events were not held up behind it: all done, once each, before its last attempt.
    for e in good:
        [call] = s.calls_for(e["event_id"])
        assert call["outcome"] == "done"
        assert call["t_end"] < poison_calls[-1]["t"]
        assert len(harness.effects(e["event_id"])) == 1
    assert harness.effects(poison["event_id"]) == []

    # It cannot loop: nothing left in the queue or its retry queues, and the gauge sees the DLQ.
    for q in [s.queue] + s.retry_queues:
        assert harness.depth(q) == 0, q
    assert metric("exchanger_dead_lettered_total", queue=s.queue) == dead_before + 1
    assert metric("exchanger_event_retries_total", queue=s.queue) == retries_before + MAX_ATTEMPTS - 1
    wait_until(lambda: metric("exchanger_dlq_messages", queue=s.dlq) == 1, what="DLQ gauge = 1")

    [msg] = harness.take_all(s.dlq)
    assert json.loads(msg.body)["event_id"] == poison["event_id"]
    assert msg.properties["message_id"] == poison["event_id"]
    headers = msg.properties["application_headers"]
    # The header carries the number the next delivery would have had: attempts made + 1.
    assert headers[ATTEMPT_HEADER] == MAX_ATTEMPTS   # attempts made
    assert headers[ERROR_HEADER] == "RuntimeError: poison event %s" % poison["event_id"]
    wait_until(lambda: metric("exchanger_dlq_messages", queue=s.dlq) == 0, what="DLQ gauge back to 0")
    assert len(s.calls_for(poison["event_id"])) == MAX_ATTEMPTS


def test_transient_failure_is_retried_with_a_delay_and_succeeds_once(harness):
    s = harness.subscribe("order_paid", max_attempts=MAX_ATTEMPTS, base_delay_ms=BASE_DELAY_MS)
    harness.start_consumer(s)
    retries_before = metric("exchanger_event_retries_total", queue=s.queue)
    dead_before = metric("exchanger_dead_lettered_total", queue=s.queue)

    event = events.envelope(harness.source, "order_paid", {"fail_times": 2})
    assert harness.publish("order_paid", [event]) == ["ok"]
    wait_until(lambda: _settled(s.calls, 3), timeout=15, what="three deliveries")

    assert [c["outcome"] for c in s.calls] == ["error", "error", "done"]
    _assert_delayed(s.calls)
    # The failed attempts rolled back their effect and their inbox claim; the last one committed both.
    [effect] = harness.effects()
    assert str(effect["event_id"]) == event["event_id"]
    assert len(harness.processed(event["event_id"])) == 1
    assert metric("exchanger_event_retries_total", queue=s.queue) == retries_before + 2
    assert metric("exchanger_dead_lettered_total", queue=s.queue) == dead_before
    wait_until(lambda: all(harness.depth(q) == 0 for q in s.all_queues), what="all queues empty")


def test_a_database_outage_longer_than_the_attempts_is_waited_out_not_parked(harness):
    """Defect: after max_attempts (about 30 s in production) a money event parked in the DLQ when PostgreSQL was
    unreachable, and nothing brought it back. A transient failure is now retried without limit."""
    s = harness.subscribe("order_paid", max_attempts=MAX_ATTEMPTS, base_delay_ms=BASE_DELAY_MS)
    harness.start_consumer(s)
    dead_before = metric("exchanger_dead_lettered_total", queue=s.queue)
    event = events.envelope(harness.source, "order_paid", {"db_down_times": MAX_ATTEMPTS + 3})
    assert harness.publish("order_paid", [event]) == ["ok"]

    wait_until(lambda: len(s.calls_for(event["event_id"])) >= MAX_ATTEMPTS + 1, timeout=15,
               what="more failed deliveries than max_attempts")
    assert metric("exchanger_event_oldest_waiting_seconds", queue=s.queue) > 0
    wait_until(lambda: harness.effects(event["event_id"]), timeout=20, what="the effect once the database is back")
    calls = s.calls_for(event["event_id"])
    assert [c["outcome"] for c in calls] == ["error"] * (MAX_ATTEMPTS + 3) + ["done"]
    # The delay grew and then stayed at the last retry queue's (capped backoff).
    gaps = [after["t"] - before["t_end"] for before, after in zip(calls, calls[1:])]
    assert all(gap >= DELAYS[-1] - SLACK for gap in gaps[len(DELAYS):]), gaps
    assert harness.depth(s.dlq) == 0
    assert metric("exchanger_dead_lettered_total", queue=s.queue) == dead_before
    assert metric("exchanger_event_oldest_waiting_seconds", queue=s.queue) == 0


def test_a_malformed_event_is_parked_at_once(harness):
    s = harness.subscribe("order_paid", max_attempts=MAX_ATTEMPTS, base_delay_ms=BASE_DELAY_MS)
    harness.start_consumer(s)
    bad = events.envelope(harness.source, "order_paid", {"n": 1})
    del bad["data"]                                  # the handler reads payload["data"]: a KeyError, not retried
    assert harness.publish("order_paid", [bad]) == ["ok"]
    wait_until(lambda: harness.depth(s.dlq) == 1, timeout=10, what="the malformed event in the DLQ")
    [msg] = harness.take_all(s.dlq)
    assert msg.properties["application_headers"][ATTEMPT_HEADER] == 1   # one attempt, no retry
    assert all(harness.depth(q) == 0 for q in s.retry_queues)
