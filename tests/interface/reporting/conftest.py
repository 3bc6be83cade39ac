"""Fixtures for the reporting interface tests: the reporting service in a real nameko container against the real
PostgreSQL and RabbitMQ (test database and vhost), its internal HTTP export endpoint on a free port, and events
published exactly as the owners' outbox relays publish them (exchange `<source>.events`, routing key = type).

Tests share the database (and other suites' orders may arrive on the reporting queues), so every test uses its
own block of order ids far above anything a real sequence hands out, and asserts on those ids only.
"""
import csv
import io
import json
import socket
import uuid

import pytest
import requests

from libs.amqp_publish import ConfirmingPublisher
from libs.db import Database
from services.reporting.dependencies import ReadModel
from services.reporting.service import ReportingService
from tests.conftest import TEST_AMQP_URI


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ids():
    """A generator of order ids unique to this test."""
    base = 10**12 + (uuid.uuid4().int % 10**9) * 1000
    counter = iter(range(base, base + 1000))
    return lambda: next(counter)


@pytest.fixture
def db(migrated_database):
    database = Database(url=migrated_database, schema="reporting", maxconn=4, application_name="reporting-tests")
    yield database
    database.close()


@pytest.fixture
def readmodel(db):
    return ReadModel(db)


@pytest.fixture
def reporting_config(nameko_config):
    port = free_port()
    return dict(nameko_config, METRICS_PORT=None, WEB_SERVER_ADDRESS="127.0.0.1:%d" % port, MAX_EXPORTS=2,
                INTERNAL_TOKEN=None)


class Reporting:
    def __init__(self, container, config):
        self.container = container
        self.url = "http://%s" % config["WEB_SERVER_ADDRESS"]

    def export(self, stream=False, **params):
        return requests.get(self.url + "/orders.csv", params=params, stream=stream, timeout=30)

    def rows(self, **params):
        """The export parsed as CSV: (header, [row dicts])."""
        response = self.export(**params)
        assert response.status_code == 200, response.text
        encoding = params.get("encoding", "utf-8")
        delimiter = ";" if encoding == "windows-1251" else ","
        reader = csv.reader(io.StringIO(response.content.decode(encoding), newline=""), delimiter=delimiter)
        header = next(reader)
        return header, [dict(zip(header, r)) for r in reader]


@pytest.fixture
def reporting(container_factory, reporting_config):
    container = container_factory(ReportingService, reporting_config)
    container.start()
    return Reporting(container, reporting_config)


@pytest.fixture(params=["psql", "python"])
def engine(request):
    return request.param


@pytest.fixture
def reporting_engine(container_factory, reporting_config, engine):
    """The service with each export engine in turn (psql \\copy and the Python child)."""
    config = dict(reporting_config, EXPORT_ENGINE=engine)
    container = container_factory(ReportingService, config)
    container.start()
    return Reporting(container, config)


class Publisher:
    def __init__(self, amqp_uri):
        self.publisher = ConfirmingPublisher(amqp_uri)
        for source in ("orders", "payments"):
            self.publisher.declare_exchange("%s.events" % source)

    def publish(self, envelope, routing_key=None):
        result = self.publisher.publish_batch([{
            "message_id": envelope.get("event_id", str(uuid.uuid4())), "exchange": "%s.events" % envelope["source"],
            "routing_key": routing_key or envelope["event_type"], "body": json.dumps(envelope)}])
        assert result == ["ok"], result

    def close(self):
        self.publisher.close()


@pytest.fixture
def publish():
    p = Publisher(TEST_AMQP_URI)
    yield p.publish
    p.close()


@pytest.fixture
def seed(readmodel, db):
    """Put order snapshots straight into the read model (as a rebuild does); removes them after the test."""
    seeded = []

    def put(*snapshots):
        readmodel.upsert_snapshots(list(snapshots))
        seeded.extend(s["id"] for s in snapshots)
        return snapshots
    yield put
    if seeded:
        with db.transaction() as cur:
            cur.execute("DELETE FROM orders WHERE id = ANY(%s)", (seeded,))


def row(db, order_id):
    return db.fetchone("SELECT * FROM orders WHERE id = %s", (order_id,))

