"""The outbox relay outlives broker connection failures (docs/reliability.md, P8, P10, and T5/T6 in the small):
pending events stay in the outbox while the broker is unreachable and are published, in order, once it is back.

The broker is reached through a local TCP proxy that the test cuts and restores, so the shared broker is untouched.
"""
import pytest

from .harness import FlakyProxy, metric, wait_until

pytestmark = pytest.mark.timeout(45)


def _published(harness, *event_ids):
    rows = {str(r["id"]): r for r in harness.outbox_rows()}
    return all(rows[e]["published_at"] is not None for e in event_ids)


def test_relay_publishes_pending_events_after_the_broker_comes_back(harness):
    s = harness.subscribe("order_paid")
    proxy = FlakyProxy()
    try:
        errors_before = metric("exchanger_outbox_publish_errors_total", source=harness.source)

        # 1. The broker is unreachable when the relay starts.
        proxy.cut()
        first = harness.write_event("order_paid", {"n": 1})
        relay = harness.relay(amqp_uri=proxy.uri, idle_wait=0.2)
        worker = harness.spawn(relay.run_forever)
        wait_until(lambda: proxy.refused >= 2, what="the relay retrying a dead broker")
        assert not _published(harness, first["event_id"])
        proxy.restore()
        wait_until(lambda: _published(harness, first["event_id"]), timeout=15, what="first event published")
        assert harness.depth(s.queue) == 1  # the relay declared the queue once it could

        # 2. The connection dies under a running relay; events written meanwhile wait in the outbox.
        proxy.cut()
        refused = proxy.refused
        more = harness.write_events("order_paid", [{"n": 2}, {"n": 3}])  # one transaction, so one batch
        ids = [e["event_id"] for e in more]

        def failure_recorded():
            rows = [r for r in harness.outbox_rows() if str(r["id"]) in ids]
            return all(r["attempts"] >= 1 and r["last_error"] and r["published_at"] is None for r in rows)

        wait_until(failure_recorded, timeout=15, what="the failed publish recorded on the pending rows")
        assert metric("exchanger_outbox_publish_errors_total", source=harness.source) >= errors_before + 2
        wait_until(lambda: proxy.refused > refused, what="the relay reconnecting")
        assert not worker.dead  # it is still running
        proxy.restore()
        wait_until(lambda: _published(harness, *ids), timeout=15, what="pending events published")

        # 3. Its publisher connection closed mid-run (as a broker-side close would): it reconnects on its own.
        relay.publisher.close()
        last = harness.write_event("order_paid", {"n": 4})
        wait_until(lambda: _published(harness, last["event_id"]), timeout=15, what="event after a close")

        messages = harness.take_all(s.queue)
        assert [m.properties["message_id"] for m in messages] == (
            [first["event_id"]] + ids + [last["event_id"]])  # each once, in outbox order
        assert all(r["routed"] is True for r in harness.outbox_rows())
    finally:
        proxy.close()
