"""Fixtures of the payments interface tests (harness.py explains the set-up)."""
import logging
import threading
import uuid

import pytest
from werkzeug.serving import make_server

from libs.db import Database
from sandbox import database as sandbox_database
from sandbox.app import create_app
from tests.conftest import TEST_DATABASE_URL
from tests.interface.payments.harness import PayEnv, delete_vhost, drop_schema, migrate_private_schema, \
    private_vhost
from tests.interface.sandbox_fixtures import Client


logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per sandbox request is noise here


class PrivateSandbox:
    """The sandbox payment system (its real Flask app) on a free port, on a private copy of its schema: other
    test sessions reset the shared `sandbox` schema whenever they start, which must not pull the floor from
    under a payout in flight here."""

    def __init__(self):
        self.schema = "paysbx_%s" % uuid.uuid4().hex[:8]
        migrate_private_schema(self.schema, "sandbox/migrations")
        self.app = create_app({"DATABASE_URL": TEST_DATABASE_URL, "TESTING": True})
        self.app.extensions[sandbox_database.EXTENSION].close()
        self.app.extensions[sandbox_database.EXTENSION] = Database(
            url=TEST_DATABASE_URL, schema=self.schema, maxconn=25, application_name="paytest-sandbox")
        self.httpd = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_port
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="paytest-sandbox", daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.thread.join(5)
        self.httpd.server_close()
        self.app.extensions[sandbox_database.EXTENSION].close()
        drop_schema(self.schema)


@pytest.fixture(scope="session")
def pay_sandbox_server():
    server = PrivateSandbox()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pay_amqp_uri():
    name = "paytest_%s" % uuid.uuid4().hex[:8]
    yield private_vhost(name)
    delete_vhost(name)


@pytest.fixture
def env(pay_sandbox_server, tmp_path, pay_amqp_uri):
    client = Client(pay_sandbox_server.url)
    world = PayEnv(client, tmp_path, pay_amqp_uri)
    try:
        yield world
    finally:
        world.close()
        client.delete("/api/faults")
        client.session.close()


@pytest.fixture
def service(env, container_factory):
    """Start the payments service in a nameko container of this process (config overrides as kwargs)."""
    from services.payments.service import PaymentsService

    def start(**overrides):
        container = container_factory(PaymentsService, env.config(**overrides))
        container.start()
        env.wait_accounts_synced()
        return container
    return start
