"""Duplicate deliveries have one effect (docs/reliability.md, P9 and T7): the inbox row and the effect share a
transaction."""
import threading as green_threading  # patched: green threads (each with its own broker connection)

import eventlet
import psycopg2
import pytest

from libs import inbox
from libs.contracts import events

from .harness import DATABASE_URL, wait_until

pytestmark = pytest.mark.timeout(30)

os_threading = eventlet.patcher.original("threading")  # real OS threads, for real concurrent DB transactions


def _settled(s, n):
    return len(s.calls) == n and all(c["outcome"] for c in s.calls)


def test_same_envelope_twice_and_concurrently_from_two_threads_has_one_effect(harness):
    s = harness.subscribe("payment_seen")
    harness.start_consumer(s)

    # The same envelope published twice in a row.
    first = events.envelope(harness.source, "payment_seen", {"txn": "A"})
    assert harness.publish("payment_seen", [first, first]) == ["ok", "ok"]
    wait_until(lambda: _settled(s, 2), what="two deliveries of the first event")

    # Another envelope published by two threads at the same moment, each on its own connection.
    second = events.envelope(harness.source, "payment_seen", {"txn": "B"})
    barrier = green_threading.Barrier(2)
    results = []

    def publish_at_once():
        barrier.wait()
        results.append(harness.publish("payment_seen", [second]))

    threads = [green_threading.Thread(target=publish_at_once) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [["ok"], ["ok"]]
    wait_until(lambda: _settled(s, 4), what="two deliveries of the second event")

    for event in (first, second):
        calls = s.calls_for(event["event_id"])
        assert sorted(c["outcome"] for c in calls) == ["done", "duplicate"], calls
        assert len(harness.effects(event["event_id"])) == 1
        assert len(harness.processed(event["event_id"])) == 1
    assert len(harness.effects()) == 2
    wait_until(lambda: harness.depth(s.queue) == 0, what="every delivery acked")


def test_concurrent_claims_of_one_event_block_then_lose(harness):
    """`inbox.claim` in two truly concurrent transactions (OS threads, own connections): the second waits on the
    first's primary-key entry and, once the first commits, sees a duplicate. One effect."""
    event_id = events.envelope(harness.source, "payment_seen", {})["event_id"]
    consumer = "race.handle"
    outcome = {}
    a_claimed = os_threading.Event()
    release_a = os_threading.Event()

    def connect():
        conn = psycopg2.connect(DATABASE_URL, options="-c search_path=%s" % harness.schema,
                                application_name="msgtest-race")
        with conn.cursor() as cur:
            cur.execute("SET lock_timeout = '15s'")  # a bug here fails the test instead of hanging it
        conn.commit()
        return conn

    def worker(name, before_commit=None):
        conn = connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                outcome[name + "_pid"] = cur.fetchone()[0]
                if name == "b":
                    a_claimed.wait(10)
                won = inbox.claim(cur, consumer, event_id)
                outcome[name] = won
                if won:
                    cur.execute("INSERT INTO effects (consumer, event_id, data) VALUES (%s, %s, '{}')",
                                (consumer, event_id))
                if before_commit:
                    before_commit()
            conn.commit()
        except Exception as exc:  # noqa: BLE001 - reported by the assertions below
            outcome[name + "_error"] = exc
            conn.rollback()
        finally:
            conn.close()

    def a_holds_its_transaction_open():
        a_claimed.set()
        release_a.wait(15)

    a = os_threading.Thread(target=worker, args=("a", a_holds_its_transaction_open))
    b = os_threading.Thread(target=worker, args=("b",))
    a.start()
    b.start()
    try:
        # B is really blocked on A's uncommitted inbox row (not merely slow).
        wait_until(lambda: "b_pid" in outcome and harness.db.fetchone(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (outcome["b_pid"],)
        )["wait_event_type"] == "Lock", timeout=10, what="B waiting for A's lock")
        assert "b" not in outcome
    finally:
        release_a.set()
        a.join(15)
        b.join(15)
    assert not any(k.endswith("_error") for k in outcome), outcome
    assert outcome["a"] is True and outcome["b"] is False
    assert len(harness.effects(event_id)) == 1
    assert len(harness.processed(event_id)) == 1
