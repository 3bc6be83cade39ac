import eventlet  # noqa: E402  first, before anything opens a socket or a thread (docs/reliability.md, pitfall N9)
if not eventlet.patcher.is_monkey_patched("socket"):  # the root conftest may already have patched: once is enough
    eventlet.monkey_patch()

# Fixtures for the messaging interface tests: the real RabbitMQ (default vhost, unique names per test) and the real
# PostgreSQL (a throw-away schema per test). harness.py says what a test can do with them.
import os  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
if ROOT not in sys.path:  # `libs` and `services` are imported from the repository root
    sys.path.insert(0, ROOT)

from .harness import AMQP_URI, Harness  # noqa: E402


@pytest.fixture
def amqp_config():
    """nameko config without the management API (rabbit_config needs it): default vhost, unique names."""
    return {"AMQP_URI": AMQP_URI}


@pytest.fixture
def harness(container_factory, tmp_path):
    h = Harness(container_factory, tmp_path)
    try:
        yield h
    finally:
        h.close()
