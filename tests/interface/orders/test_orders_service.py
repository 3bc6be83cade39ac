"""The orders service in a real nameko container against real PostgreSQL and RabbitMQ; no other service runs.

Events are caught on a queue of our own bound to `orders.events`, so what a consumer would receive is checked."""
import json
import uuid

import eventlet
import psycopg2
import pytest
from nameko.testing.services import entrypoint_hook, entrypoint_waiter

from libs import errors
from libs.amqp_publish import connect
from services.orders.dependencies import Orders
from tests.conftest import eventually
from tests.interface.orders_fixtures import db, orders  # noqa: F401  (fixtures)

STAFF = {"name": "op-1", "role": "operator"}






@pytest.fixture
def events_queue(nameko_config, orders):
    """A queue bound to every orders event; yields a function returning the bodies received so far."""
    name = "test-orders-events-%s" % uuid.uuid4().hex[:8]
    conn = connect(nameko_config["AMQP_URI"])
    channel = conn.channel()
    channel.exchange_declare("orders.events", "topic", durable=True, auto_delete=False)
    channel.queue_declare(name, durable=False, auto_delete=False, exclusive=True)
    channel.queue_bind(name, "orders.events", routing_key="#")
    received = []

    def drain():
        while True:
            message = channel.basic_get(name, no_ack=True)
            if message is None:
                return received
            received.append(json.loads(message.body))
    yield drain
    conn.close()


def call(container, method, *args):
    with entrypoint_hook(container, method) as hook:
        return hook(*args)


def manual_direction(container):
    return next(d for d in call(container, "list_directions") if d["exchange_type"] == "manual")


def create(container, direction, **extra):
    data = {"direction_id": direction["id"], "amount_in": "100", "email": "c@example.com", "recipient": "W"}
    data.update(extra)
    return call(container, "create_order", data, {"ip": "127.0.0.1"})


def test_create_commits_the_order_and_publishes_its_event(orders, events_queue, db):
    order = create(orders, manual_direction(orders))
    assert order["status"] == "new" and order["amount_out"] == "106.465"   # 100 EUR * 1.07 - 0.5% in USDT (6 places)

    def published():
        return [e for e in events_queue() if e["data"].get("order", {}).get("id") == order["id"]]
    event = eventually(published, timeout=20)[0]
    assert event["event_type"] == "order_created" and event["source"] == "orders"
    assert uuid.UUID(event["event_id"])
    assert event["data"]["order"]["amount_in"] == "100"            # strings on the wire
    # marked published right after the broker confirmed it (a consumer may see the event a moment earlier)
    eventually(lambda: db.fetchone("SELECT published_at FROM outbox WHERE id = %s",
                                   (event["event_id"],))["published_at"] is not None, timeout=10)


def test_business_errors_are_expected_exceptions_with_fields(orders):
    direction = manual_direction(orders)
    with pytest.raises(errors.ValidationFailed) as exc:
        create(orders, direction, amount_in="1")
    assert "amount_in" in exc.value.fields
    with pytest.raises(errors.ValidationFailed):
        create(orders, direction, direction_id=999999)


def test_transitions_are_compare_and_set_under_concurrency(orders, db):
    order = create(orders, manual_direction(orders))
    call(orders, "claim_paid", order["token"])
    store = Orders(db)   # two workers at once, each with its own connection and transaction
    outcomes = []

    def act(action, actor, note):
        try:
            outcomes.append((action, store.transition(action, actor, order_id=order["id"], note=note)["status"]))
        except errors.Conflict:
            outcomes.append((action, "conflict"))
    pool = eventlet.GreenPool()
    pool.spawn(act, "finalize", dict(STAFF, kind="staff"), None)
    pool.spawn(act, "cancel", dict(STAFF, kind="staff", name="op-2"), "customer asked")
    pool.waitall()
    assert sorted(o[1] for o in outcomes) in (["completed", "conflict"], ["canceled", "conflict"])
    history = db.fetchall("SELECT to_status FROM status_history WHERE order_id = %s ORDER BY id", (order["id"],))
    assert len(history) == 3   # new, payment_claimed, and exactly one of completed/canceled


def test_expiry_timer_works_from_the_database_deadline(orders, db):
    order = create(orders, manual_direction(orders))
    with db.transaction() as cur:
        cur.execute("UPDATE orders SET expires_at = now() - interval '1 minute' WHERE id = %s", (order["id"],))
    with entrypoint_waiter(orders, "expire_unpaid", timeout=15):
        pass
    assert call(orders, "get_order", order["id"])["status"] == "expired"


def test_the_database_refuses_a_transition_the_table_does_not_list(orders, db):
    order = create(orders, manual_direction(orders))
    with pytest.raises(psycopg2.errors.CheckViolation):
        with db.transaction() as cur:
            cur.execute("UPDATE orders SET status = 'completed' WHERE id = %s", (order["id"],))


def test_audit_log_is_append_only(orders, db):
    create(orders, manual_direction(orders))
    with pytest.raises(psycopg2.errors.RaiseException):
        with db.transaction() as cur:
            cur.execute("UPDATE audit_log SET actor = 'someone else'")
    with pytest.raises(psycopg2.errors.RaiseException):
        with db.transaction() as cur:
            cur.execute("DELETE FROM audit_log")


def test_operator_commands_need_an_actor(orders):
    order = create(orders, manual_direction(orders))
    with pytest.raises(errors.Forbidden):
        call(orders, "cancel", order["id"], "no actor", None)


def test_customer_sms_fee_is_added_when_the_customer_opts_in_and_sms_is_available(orders, db):
    store = Orders(db)
    direction = manual_direction(orders)   # EUR -> USDT at 1.07, fee 0.5 %
    with db.transaction() as cur:
        cur.execute("UPDATE sms_fee_setting SET fee_percent = 0, available = false, version = 0")
    store.apply_sms_fee_setting(str(uuid.uuid4()), "orders.handle_settings_changed",
                                {"customer_sms_fee": "1.5", "customer_sms_available": True, "version": 7})
    # an older announcement arriving late changes nothing
    store.apply_sms_fee_setting(str(uuid.uuid4()), "orders.handle_settings_changed",
                                {"customer_sms_fee": "9", "customer_sms_available": True, "version": 3})
    opted = create(orders, direction, phone="+4915112345678", sms_opt_in=True)
    plain = create(orders, direction, phone="+4915112345678")
    assert plain["sms_fee"] == "0" and plain["amount_out"] == "106.465"
    assert opted["sms_fee"] == "1.605"                      # 1.5 % of 107 USDT
    assert opted["amount_out"] == "104.86"                  # 107 - 0.5 % - 1.5 %
    # while customer SMS would not really go out, nobody pays for it
    store.apply_sms_fee_setting(str(uuid.uuid4()), "orders.handle_settings_changed",
                                {"customer_sms_fee": "1.5", "customer_sms_available": False, "version": 8})
    assert create(orders, direction, phone="+4915112345678", sms_opt_in=True)["sms_fee"] == "0"


def test_a_staff_change_of_where_customers_pay_commits_its_alert_with_it(orders, db):
    """docs/security.md: the change, its audit row and `security_change` in the outbox commit together; a change
    with no staff role (an automatic one) raises none."""
    code = "S" + uuid.uuid4().hex[:6].upper()
    admin = {"name": "adm-1", "role": "admin", "ip": "198.51.100.7", "kind": "staff"}
    call(orders, "create_currency", {"code": code, "name": code, "precision": 2, "payment_system": "testpay",
                                     "account": "GOOD-1", "active": False}, admin)
    call(orders, "update_currency", code, {"account": "EVIL-1"}, admin)
    call(orders, "update_currency", code, {"name": "renamed"}, {"name": "rate-engine"})   # no staff role
    rows = db.fetchall("SELECT payload FROM outbox WHERE event_type = 'security_change' "
                       "AND payload->'data'->'detail'->>'code' = %s ORDER BY created_at", (code,))
    data = [json.loads(r["payload"])["data"] if isinstance(r["payload"], str) else r["payload"]["data"] for r in rows]
    assert [d["action"] for d in data] == ["currency_create", "currency_update"]
    assert data[1]["actor"] == "adm-1" and data[1]["actor_ip"] == "198.51.100.7"
    assert data[1]["detail"]["changes"] == {"account": "EVIL-1"}
    assert data[1]["detail"]["before"] == {"account": "GOOD-1"}
