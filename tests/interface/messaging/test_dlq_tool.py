"""The dead-letter queue tool (libs/dlq.py, written with pika): list, show, replay and discard against the real
broker, every replay and discard audited in ops.audit_log with the event itself."""
import json
import os
import subprocess
import sys

import psycopg2
import psycopg2.extras
import pytest

from libs import migrate
from libs.contracts import events

from .harness import AMQP_URI, DATABASE_URL, ROOT, wait_until

pytestmark = pytest.mark.timeout(90)


class Tool:
    """`python -m libs.dlq` as an operator runs it (its own process: pika wants no eventlet)."""

    def run(self, *args, expect=0):
        env = dict(os.environ, AMQP_URI=AMQP_URI, DATABASE_URL=DATABASE_URL, PYTHONPATH=ROOT)
        done = subprocess.run([sys.executable, "-m", "libs.dlq"] + list(args), cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == expect, done.stdout + done.stderr
        return done.stdout

    def queues(self):
        rows = [line.split() for line in self.run("list").splitlines() if line.strip()]
        return [(name, int(count)) for count, name in rows]

    def show(self, queue):
        return json.loads(self.run("show", queue))

    def _act(self, command, queue, event_ids, actor, reason, expect=0):
        args = [command, queue] + [a for e in event_ids for a in ("--event-id", e)]
        args += (["--actor", actor] if actor else []) + (["--reason", reason] if reason else [])
        out = self.run(*args, expect=expect)
        return [e for e in event_ids if e in out.split("\n")[0]]

    def discard(self, queue, event_ids, actor=None, reason=None, expect=0):
        return self._act("discard", queue, event_ids, actor, reason, expect)

    def replay(self, queue, event_ids, actor=None, reason=None, expect=0):
        return self._act("replay", queue, event_ids, actor, reason, expect)


@pytest.fixture
def tool():
    migrate.migrate(DATABASE_URL, parts=["ops"], verbose=False)
    return Tool()


def audit_rows(event_id):
    conn = psycopg2.connect(DATABASE_URL)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SELECT * FROM ops.audit_log WHERE event_id = %s ORDER BY id", (str(event_id),))
            return cur.fetchall()
    finally:
        conn.close()


def test_list_show_replay_and_discard_are_audited(harness, tool):
    s = harness.subscribe("order_paid", max_attempts=2, base_delay_ms=100)
    harness.start_consumer(s)
    poison = [events.envelope(harness.source, "order_paid", {"poison": True, "n": n}) for n in range(3)]
    assert harness.publish("order_paid", poison) == ["ok"] * 3
    wait_until(lambda: harness.depth(s.dlq) == 3, timeout=20, what="three events in the DLQ")

    # `list` names the DLQ of every subscription of the system's topology (this test's own is in-process only).
    listed = dict(tool.queues())
    assert "evt-payments-payout_sent--orders.handle_payout_sent.dlq" in listed
    shown = tool.show(s.queue)
    assert {e["event_id"] for e in shown} == {p["event_id"] for p in poison}
    assert all(e["attempts"] == 2 and "poison event" in e["error"] for e in shown)
    assert harness.depth(s.dlq) == 3                       # showing takes nothing

    tool.discard(s.queue, [poison[0]["event_id"]], expect=2)   # no actor and reason, no action
    assert harness.depth(s.dlq) == 3

    # Discard one: gone from the DLQ, and the audit row keeps the whole event.
    assert tool.discard(s.dlq, [poison[0]["event_id"]], actor="alice", reason="test event") == [poison[0]["event_id"]]
    wait_until(lambda: harness.depth(s.dlq) == 2, what="two left")
    [row] = audit_rows(poison[0]["event_id"])
    assert row["action"] == "dlq_discard" and row["actor"] == "alice" and row["queue"] == s.queue
    assert row["detail"]["reason"] == "test event" and row["detail"]["event"]["data"]["n"] == 0

    # Replay one whose cause is fixed: it goes back to its queue as a first attempt and is handled once.
    fixed = poison[1]
    calls_before = len(s.calls_for(fixed["event_id"]))
    s.calls.clear()
    assert tool.replay(s.queue, [fixed["event_id"]], actor="bob", reason="fixed") == [fixed["event_id"]]
    wait_until(lambda: len(s.calls_for(fixed["event_id"])) >= 1, what="the replayed event delivered again")
    assert calls_before == 2
    [row] = audit_rows(fixed["event_id"])
    assert row["action"] == "dlq_replay" and row["actor"] == "bob"
    # Still poison (the consumer did not change): back in the DLQ after its attempts, the third one untouched.
    wait_until(lambda: harness.depth(s.dlq) == 2, timeout=20, what="the replayed poison back in the DLQ")
    assert tool.replay(s.queue, ["no-such-event"], actor="bob", reason="typo", expect=1) == []
    assert harness.depth(s.dlq) == 2
