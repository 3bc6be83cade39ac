"""Idempotency keys of order creation belong to a caller and to a request (docs/architecture.md, "Idempotency
keys"): the gateway passes the caller's scope with the key; orders keeps a hash of the request with it."""
import uuid

import pytest
from nameko.containers import ServiceContainer
from nameko.testing.services import entrypoint_hook

from libs import errors
from libs.db import Database
from services.orders import seed
from services.orders.service import OrdersService


@pytest.fixture
def orders(nameko_config, migrated_database):
    database = Database(migrated_database, schema="orders", maxconn=1)
    seed.seed(database)
    database.close()
    container = ServiceContainer(OrdersService, dict(nameko_config, METRICS_PORT=None))
    container.start()
    yield container
    container.kill()


def create(container, body, key, scope):
    with entrypoint_hook(container, "create_order") as hook:
        return hook(dict(body, request_id=key, request_scope=scope), {"ip": "127.0.0.1"})


def test_idempotency_key_is_one_global_namespace_and_ignores_the_body(orders):
    with entrypoint_hook(orders, "list_directions") as hook:
        direction = next(d for d in hook() if d["exchange_type"] == "manual")
    body = {"direction_id": direction["id"], "amount_in": "50", "email": "scoped@example.com", "recipient": "R"}
    key = uuid.uuid4().hex
    alice = create(orders, body, key, "session:alice")
    assert create(orders, body, key, "session:alice")["id"] == alice["id"]
    assert create(orders, dict(body, amount_in="50.0"), key, "session:alice")["id"] == alice["id"]
    stranger = create(orders, body, key, "session:mallory")
    assert stranger["id"] != alice["id"] and stranger["token"] != alice["token"]
    with pytest.raises(errors.Conflict) as exc:
        create(orders, dict(body, amount_in="60"), key, "session:alice")
    assert "different request" in exc.value.message
