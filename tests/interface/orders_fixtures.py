"""The orders service in a real nameko container against the real PostgreSQL and RabbitMQ (no other service runs),
with the seeded demo currencies and directions: the fixtures every orders and partner interface test starts from.
Import them into a test module or conftest (`from tests.interface.orders_fixtures import db, orders`)."""
import pytest
from nameko.containers import ServiceContainer

from libs.db import Database
from services.orders import seed
from services.orders.service import OrdersService


@pytest.fixture
def db(migrated_database):
    database = Database(migrated_database, schema="orders", maxconn=4)
    seed.seed(database)
    yield database
    database.close()


@pytest.fixture
def orders(nameko_config, db):
    container = ServiceContainer(OrdersService, dict(nameko_config, METRICS_PORT=None))
    container.start()
    yield container
    container.kill()   # a graceful stop waits ~2 s for the consumers; nothing here needs it
