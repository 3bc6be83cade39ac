"""Demo accounts of the sandbox payment system: the exchanger's own accounts and a few customer wallets.

Idempotent: `python -m sandbox.seed` creates what is missing and leaves existing accounts (and their balances)
alone, so it can run on every start. It applies the sandbox migrations first unless --no-migrate.
"""
import argparse
import sys
from decimal import Decimal as D

from libs import config
from libs.db import Database
from sandbox import storage

EXCHANGER = "exchanger"

# account, currency, owner, opening balance
ACCOUNTS = [
    ("EXCH-USD", "USD", EXCHANGER, D("100000")),
    ("EXCH-EUR", "EUR", EXCHANGER, D("100000")),
    ("EXCH-RUB", "RUB", EXCHANGER, D("10000000")),
    ("EXCH-USDT", "USDT", EXCHANGER, D("100000")),
    ("ALICE-USD", "USD", "alice", D("5000")),
    ("ALICE-EUR", "EUR", "alice", D("5000")),
    ("ALICE-USDT", "USDT", "alice", D("5000")),
    ("BOB-RUB", "RUB", "bob", D("500000")),
    ("BOB-USD", "USD", "bob", D("5000")),
    ("CAROL-EUR", "EUR", "carol", D("5000")),
    ("CAROL-USDT", "USDT", "carol", D("5000")),
]


def seed(db=None, verbose=True):
    """Create the missing demo accounts; returns the ids it created."""
    own = db is None
    db = db or Database(schema="sandbox", maxconn=1, application_name="sandbox-seed")
    created = []
    try:
        with db.transaction() as cur:
            for account, currency, owner, balance in ACCOUNTS:
                _, new = storage.ensure_account(cur, account, currency, balance, owner)
                if new:
                    created.append(account)
    finally:
        if own:
            db.close()
    if verbose:
        print("sandbox seed: %d accounts created%s" % (len(created), (": " + ", ".join(created)) if created else ""))
    return created


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None, help="default: $DATABASE_URL or the local default")
    parser.add_argument("--no-migrate", action="store_true")
    args = parser.parse_args(argv)
    url = args.database_url or config.database_url()
    if not args.no_migrate:
        from libs.migrate import migrate
        migrate(url, ["sandbox"])
    seed(Database(url=url, schema="sandbox", maxconn=1, application_name="sandbox-seed"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
