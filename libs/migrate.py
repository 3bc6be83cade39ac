"""Apply every part's schema migrations with yoyo: `python -m libs.migrate`.

Each part keeps its migrations (plain SQL files, or Python files of yoyo steps) in its own `migrations/` folder and
owns one PostgreSQL schema of the same name; yoyo's bookkeeping tables live inside that schema, so parts migrate
independently. The tables every part shares (outbox, inbox, audit log) are defined once in libs/schema_parts.py:
docs/migrations.md.
"""
import argparse
import os
import sys
from urllib.parse import urlencode, urlsplit, urlunsplit, parse_qsl

import psycopg2
from yoyo import get_backend, read_migrations

from libs import config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# schema name -> folder of migrations, in the order they are applied.
PARTS = {
    "orders": "services/orders/migrations",
    "payments": "services/payments/migrations",
    "notifier": "services/notifier/migrations",
    "reporting": "services/reporting/migrations",
    "rates": "services/rates/migrations",
    "gateway": "gateway/migrations",
    "sandbox": "sandbox/migrations",
    "ops": "libs/ops_migrations",     # the audit of operators' actions on the messaging (libs/dlq.py)
}


def _with_schema(url, schema):
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["schema"] = schema
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def migrate_part(url, schema, path):
    """Apply the migrations in folder `path` that schema `schema` has not had yet; returns their ids."""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS %s" % schema)
    conn.close()
    backend = get_backend(_with_schema(url, schema))
    migrations = read_migrations(path)
    with backend.lock():
        todo = backend.to_apply(migrations)
        backend.apply_migrations(todo)
    return [m.id for m in todo]


def migrate(url=None, parts=None, verbose=True):
    url = url or config.database_url()
    applied = {}
    for schema, folder in PARTS.items():
        if parts and schema not in parts:
            continue
        path = os.path.join(ROOT, folder)
        if not os.path.isdir(path):
            continue
        applied[schema] = migrate_part(url, schema, path)
        if verbose:
            print("migrated %-10s %d new: %s" % (schema, len(applied[schema]), ", ".join(applied[schema]) or "-"))
    return applied


def main(argv=None):
    config.refuse_unsafe_production("migrate")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("parts", nargs="*", help="schemas to migrate (default: all)")
    args = parser.parse_args(argv)
    migrate(args.database_url, args.parts or None)


if __name__ == "__main__":
    sys.exit(main())
