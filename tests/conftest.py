"""Shared test helpers. Kept free of socket-using imports: tests/unit and tests/interface monkey-patch with
eventlet in their own conftest (nameko needs it), tests/e2e does not (it drives real processes over HTTP)."""
import os
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

TEST_DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://exchanger:exchanger@127.0.0.1:5432/exchanger_test")
TEST_AMQP_URI = os.environ.get("AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/exchanger_test")
ARTIFACTS = os.path.join(ROOT, "test-artifacts")
SCHEMAS = ("orders", "payments", "notifier", "reporting", "rates", "gateway", "sandbox", "ops")


def eventually(check, timeout=20.0, interval=0.1, message="condition not met"):
    """Poll `check` until it returns a truthy value (returned) or raise AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except AssertionError as exc:
            last_exc = exc
        time.sleep(interval)
    raise AssertionError("%s within %ss%s" % (message, timeout, (": %s" % last_exc) if last_exc else ""))


def reset_database(url=TEST_DATABASE_URL):
    """Drop every service schema and migrate afresh: each test session starts from an empty system."""
    import psycopg2
    from libs import migrate
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        for schema in SCHEMAS:
            cur.execute("DROP SCHEMA IF EXISTS %s CASCADE" % schema)
    conn.close()
    migrate.migrate(url, verbose=False)


@pytest.fixture(scope="session")
def database_url():
    return TEST_DATABASE_URL


@pytest.fixture(scope="session")
def amqp_uri():
    return TEST_AMQP_URI


@pytest.fixture(scope="session")
def artifacts_dir():
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS
