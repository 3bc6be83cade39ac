"""Fixtures for the partner program's interface tests: the orders service in a real nameko container against the
real PostgreSQL and RabbitMQ (no other service runs), driven through its RPC entrypoints. Tests share the database,
so each one makes its own accounts (uuid e-mail addresses) and looks at those only."""
import uuid

import psycopg2
import psycopg2.extras
import pytest
from nameko.testing.services import entrypoint_hook

from tests.interface.orders_fixtures import db, orders  # noqa: F401  (fixtures)

STAFF = {"name": "op-partners", "role": "admin"}






@pytest.fixture
def sql(migrated_database):
    """Run SQL as a separate client (autocommit); returns rows as dicts."""
    conn = psycopg2.connect(migrated_database)
    conn.autocommit = True

    def run(query, params=None):
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else None
    yield run
    conn.close()


def call(container, method, *args, **kwargs):
    with entrypoint_hook(container, method) as hook:
        return hook(*args, **kwargs)


def unique_email(prefix="acct"):
    return "%s-%s@example.com" % (prefix, uuid.uuid4().hex[:10])


def token_from_outbox(sql, event_type, account_id, key):
    """The one-time link's token, from the event orders wrote for the notifier (the only place it exists)."""
    rows = sql("SELECT payload FROM orders.outbox WHERE event_type = %s AND aggregate_id = %s ORDER BY seq DESC",
               (event_type, "account:%s" % account_id))
    return rows[0]["payload"]["data"][key].split("token=", 1)[1]


def confirmed_account(container, sql, email=None, password="a good long password"):
    email = email or unique_email()
    call(container, "account_signup", email, password, "en")
    account_id = sql("SELECT id FROM orders.accounts WHERE email = %s", (email,))[0]["id"]
    account = call(container, "account_confirm", token_from_outbox(sql, "account_signup_requested", account_id,
                                                                   "confirm_url"), password)
    account["password"] = password
    return account


TRUSTED_DESTINATION = ("USDT", "CAROL-USDT")


def partner(container, sql, **kw):
    """A partner whose withdrawal destination USDT CAROL-USDT is already confirmed (as if from the letter's link:
    tests/interface/partners/test_account_hardening.py goes through the link itself), so ledger tests can approve."""
    account = confirmed_account(container, sql, **kw)
    account["partner"] = call(container, "become_partner", account["id"])["partner"]
    sql("INSERT INTO orders.withdrawal_destinations (partner_id, currency, to_account, confirmed_at) "
        "VALUES (%s, %s, %s, now())", (account["partner"]["id"],) + TRUSTED_DESTINATION)
    return account


def notice_events(sql, account_id, notice=None):
    """The `account_notice` events orders wrote for an account (oldest first): the letters' data."""
    rows = sql("SELECT payload FROM orders.outbox WHERE event_type = 'account_notice' AND aggregate_id = %s "
               "ORDER BY seq", ("account:%s" % account_id,))
    return [r["payload"]["data"] for r in rows if notice is None or r["payload"]["data"]["notice"] == notice]


def manual_direction(container):
    return next(d for d in call(container, "list_directions") if d["exchange_type"] == "manual"
                and d["currency_in"] == "EUR")


def completed_order(container, direction, partner_code=None, email=None, amount="100"):
    """A manual order through claim -> process -> finalize (no payments service needed)."""
    order = call(container, "create_order", {"direction_id": direction["id"], "amount_in": amount,
                                             "email": email or unique_email("customer"), "recipient": "W-1",
                                             "partner_code": partner_code}, {"ip": "127.0.0.1"})
    call(container, "claim_paid", order["token"])
    call(container, "process", order["id"], "checked", STAFF)
    return call(container, "finalize", order["id"], None, STAFF)
