"""Fixtures for the sandbox payment system's interface tests: the real Flask app served over HTTP by werkzeug on
a free port, against the test database. Imported by tests/interface/test_sandbox_*.py.

Every test makes its own accounts (uuid suffixes) and scopes its faults to them, so tests share the database
without depending on their order.
"""
import threading
import uuid
from decimal import Decimal

import pytest
import requests
from werkzeug.serving import make_server

from libs.migrate import migrate
from sandbox.app import create_app
from tests.conftest import TEST_DATABASE_URL

TIMEOUT = 15


class Server:
    """One sandbox app (one "worker") listening on 127.0.0.1:<free port> in a thread."""

    def __init__(self, database_url):
        self.app = create_app({"DATABASE_URL": database_url, "TESTING": True, "SANDBOX_DB_POOL": 25})
        self.httpd = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_port
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="sandbox-test-server", daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.thread.join(5)
        self.httpd.server_close()
        self.app.extensions["sandbox.db"].close()


class Client:
    """A thin HTTP client with helpers that make unique accounts and scoped faults."""

    def __init__(self, url):
        self.url = url
        self.session = requests.Session()
        self.tag = uuid.uuid4().hex[:10].upper()

    def request(self, method, path, **kwargs):
        kwargs.setdefault("timeout", TIMEOUT)
        return self.session.request(method, self.url + path, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def account(self, currency="USD", balance="1000", owner="test", name="T"):
        account_id = "%s-%s-%s" % (name, self.tag, uuid.uuid4().hex[:8].upper())
        r = self.post("/api/accounts", json={"account": account_id, "currency": currency,
                                              "balance": str(balance), "owner": owner})
        assert r.status_code == 201, r.text
        return account_id

    def balance(self, account):
        r = self.get("/api/accounts/%s" % account)
        assert r.status_code == 200, r.text
        return Decimal(r.json()["balance"])

    def transfer(self, from_account, to_account, amount, currency="USD", reference="", key=None, **kwargs):
        headers = {"Idempotency-Key": key} if key else {}
        body = {"from_account": from_account, "to_account": to_account, "amount": str(amount),
                "currency": currency}
        if reference:
            body["reference"] = reference
        return self.post("/api/transfers", json=body, headers=headers, **kwargs)

    def fault(self, **body):
        r = self.post("/api/faults", json=body)
        assert r.status_code == 201, r.text
        return r.json()


@pytest.fixture(scope="session")
def sandbox_database_url():
    migrate(TEST_DATABASE_URL, ["sandbox"], verbose=False)
    return TEST_DATABASE_URL


@pytest.fixture(scope="module")
def sandbox_server(sandbox_database_url):
    server = Server(sandbox_database_url)
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server):
    client = Client(sandbox_server.url)
    yield client
    # Faults this test scoped to its accounts must not outlive it.
    for fault in client.get("/api/faults").json()["items"]:
        if fault["account"] and client.tag in fault["account"]:
            client.delete("/api/faults/%d" % fault["id"])
    client.session.close()
