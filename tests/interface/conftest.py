import eventlet

eventlet.monkey_patch()  # noqa: E402  must run before anything opens a socket

import pytest  # noqa: E402

from tests.conftest import TEST_AMQP_URI, TEST_DATABASE_URL, reset_database  # noqa: E402


@pytest.fixture(scope="session")
def migrated_database():
    """A freshly migrated test database for the whole interface session."""
    reset_database(TEST_DATABASE_URL)
    return TEST_DATABASE_URL


@pytest.fixture
def nameko_config(migrated_database):
    return {"AMQP_URI": TEST_AMQP_URI, "DATABASE_URL": migrated_database, "max_workers": 10,
            "DLQ_WATCH_INTERVAL": 0.5, "OUTBOX_IDLE_WAIT": 0.2}
