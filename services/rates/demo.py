"""Demo formulas for the seeded directions, so the rates of `make run` follow the stand-in's moving files
(docs/rates.md, "The stand-in"): `python -m services.rates.demo`, run by deploy/local/prepare.sh unless
RATES_DEMO_FORMULAS=0 (the end-to-end tests keep the seeded rates hand-set). Idempotent: a direction that has a
formula keeps it.

Part of the rates service (it writes through the service's own store, as an admin would through the panel), run
once at install time before any service is up, so it reads the seeded directions from the orders catalogue's
tables: the one place outside orders that does, and only for the demo's seed."""
import sys

from libs import config
from libs.db import Database
from services.rates.store import RatesStore

SEED = {"kind": "system", "name": "demo-seed"}

# (currency_in, currency_out, exchange_type) -> (expression, quote)
FORMULAS = {
    ("USDT", "EUR", "auto"): ("markup(first(binance.EURUSDT.ask, ecb.USD), 0.5)", "in_per_out"),
    ("USD", "RUB", "semi_auto"): ("discount(first(binance.USDTRUB.bid, cbr.USD), 1)", "out_per_in"),
    ("RUB", "USD", "auto"): ("markup(first(binance.USDTRUB.ask, cbr.USD), 1.5)", "in_per_out"),
}


def main():
    if config.env("RATES_DEMO_FORMULAS", "1") == "0":
        return 0
    orders = Database(schema="orders", maxconn=1)
    rates = RatesStore(Database(schema="rates", maxconn=1))
    rows = orders.fetchall(
        "SELECT d.id, d.currency_in, d.currency_out, d.exchange_type, ci.precision AS precision_in, "
        "co.precision AS precision_out FROM directions d JOIN currencies ci ON ci.code = d.currency_in "
        "JOIN currencies co ON co.code = d.currency_out")
    added = 0
    for row in rows:
        formula = FORMULAS.get((row["currency_in"], row["currency_out"], row["exchange_type"]))
        if formula is None or rates.formula(row["id"]) is not None:
            continue
        expression, quote = formula
        rates.save_formula(dict(row), {"expression": expression, "quote": quote, "max_jump_percent": 10,
                                       "max_spread_percent": 5}, SEED)
        added += 1
    print("demo formulas: %d added" % added)
    return 0


if __name__ == "__main__":
    sys.exit(main())
