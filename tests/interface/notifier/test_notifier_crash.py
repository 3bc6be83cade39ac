"""The notifier killed mid-send (crash points: docs/reliability.md, "Fault tests"): a real `nameko run` process
exits at a named point, a fresh one takes over. Before the provider call: the letter goes once. After the provider
accepted it but before `sent` committed: it goes a second time with the same Message-ID: the one duplicate window,
documented in docs/notifier.md."""
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, TEST_AMQP_URI, eventually
from tests.interface.notifier import factories
from tests.interface.notifier.conftest import free_port, unique_email


def run_notifier(devsmtp, database_url, crash_at=None):
    env = dict(os.environ, PYTHONPATH=ROOT, DATABASE_URL=database_url, AMQP_URI=TEST_AMQP_URI,
               SMTP_URL=devsmtp.url, NOTIFIER_LEASE_SECONDS="1", NOTIFIER_METRICS_PORT=str(free_port()),
               NOTIFIER_RETRY_BASE_SECONDS="0.2", LOG_LEVEL="WARNING")
    env.pop("CRASH_AT", None)
    if crash_at:
        env["CRASH_AT"] = crash_at
    return subprocess.Popen([sys.executable, "-m", "nameko", "run", "services.notifier.service", "--config",
                             "services/notifier/config.yml"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("crash_at,copies", [("notifier_before_send", 1), ("notifier_after_send", 2)])
def test_killed_mid_send(crash_at, copies, devsmtp, publish, db, settings, migrated_database):
    settings(admin_email=None)
    order = factories.order("manual", email=unique_email())
    first = run_notifier(devsmtp, migrated_database, crash_at)
    second = None
    try:
        publish(factories.created(order))
        assert first.wait(30) == 137, "the notifier should have crashed at %s" % crash_at
        # whichever row it was sending when it died stays `sending` (its lease runs out)
        crashed = db.fetchone("SELECT * FROM notifications WHERE status = 'sending' ORDER BY updated_at DESC "
                              "LIMIT 1")
        assert crashed is not None and crashed["attempts"] == 1
        letters = lambda: [m for m in devsmtp.letters(crashed["recipient"])  # noqa: E731
                           if m["X-Exchanger-Notification"] == str(crashed["id"])]
        assert len(letters()) == copies - 1
        second = run_notifier(devsmtp, migrated_database)
        done = eventually(lambda: (r := db.fetchone("SELECT * FROM notifications WHERE id = %s",
                                                    (crashed["id"],))) and r["status"] == "sent" and r,
                          timeout=30, message="sent by the next process")
        assert done["attempts"] == 2 and done["outcome_unknown"] is False
        assert len(letters()) == copies
        assert len({m["Message-ID"] for m in letters()}) == 1
        eventually(lambda: devsmtp.letters(order["email"]), message="our order's letter too")
        assert len(devsmtp.letters(order["email"])) == (copies if crashed["order_id"] == order["id"] else 1)
    finally:
        stop(first)
        if second is not None:
            stop(second)
