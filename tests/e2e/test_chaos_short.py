"""A short, seeded run of the chaos bench (bench/chaos.py): the whole system under one random fault per run
(a SIGKILLed process, a crash point, broker connections closed, database backends terminated, the sandbox failing
or hanging), then every invariant of bench/chaos_checks.py ("nothing lost, nothing paid twice").

The bench starts its own copy of the system (its processes under its own supervision, so it can kill one), so it
must not share anything with the session's system of tests/e2e/conftest.py: it gets its own ports
(CHAOS_PORT_BASE, default 18200: gateway 18200, sandbox 18290, SMTP 18225, reporting 18304, metrics 19301-19304),
its own database and its own RabbitMQ vhost (the test ones with `_chaos` appended, created when missing). The
evidence of a violation is kept in test-artifacts/chaos-short/violations/."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ARTIFACTS, ROOT, TEST_AMQP_URI, TEST_DATABASE_URL

pytestmark = pytest.mark.timeout(420)

RUNS = int(os.environ.get("CHAOS_SHORT_RUNS", "14"))   # two rounds: every fault kind twice
SEED = int(os.environ.get("CHAOS_SHORT_SEED", "20260"))
DATABASE_URL = os.environ.get("CHAOS_DATABASE_URL", TEST_DATABASE_URL + "_chaos")
_BROKER, _, _VHOST = TEST_AMQP_URI.rpartition("/")
AMQP_URI = os.environ.get("CHAOS_AMQP_URI", "%s/%s_chaos" % (_BROKER, _VHOST or "exchanger"))
PORT_BASE = os.environ.get("CHAOS_PORT_BASE", "18200")


def test_seeded_chaos_runs_find_no_violation():
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is needed (the vhost, and closing the broker's connections)")
    artifacts = os.path.join(ARTIFACTS, "chaos-short")
    shutil.rmtree(artifacts, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "chaos.py"), "--runs", str(RUNS), "--seed", str(SEED),
         "--database-url", DATABASE_URL, "--amqp-uri", AMQP_URI, "--port-base", PORT_BASE,
         "--artifacts", artifacts],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    with open(os.path.join(ARTIFACTS, "chaos-short.log"), "w") as fh:
        fh.write(done.stderr + "\n" + done.stdout)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["runs"] == RUNS, result
    assert result["violations"] == 0, "chaos found violations (evidence in %s): %s\n%s" % (
        os.path.join(artifacts, "violations"), result, done.stderr[-6000:])
