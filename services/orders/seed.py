"""Demo data: sandbox currencies and one active direction of each exchange type (and a few more).
Idempotent: `python -m services.orders.seed` can run on every start."""
import os
from decimal import Decimal as D

from libs.db import Database
from services.orders.store import catalogue

# code, name, precision, account at the sandbox payment system, reserve
CURRENCIES = [
    ("USD", "Sandbox Dollar", 2, "EXCH-USD", D("100000")),
    ("EUR", "Sandbox Euro", 2, "EXCH-EUR", D("100000")),
    ("RUB", "Sandbox Ruble", 2, "EXCH-RUB", D("10000000")),
    ("USDT", "Sandbox Tether", 6, "EXCH-USDT", D("100000")),
]

# currency_in, currency_out, exchange_type, rate_in, rate_out, fee %, min, max, window minutes
DIRECTIONS = [
    ("USDT", "EUR", "auto", D("1"), D("0.92"), D("0.5"), D("10"), D("5000"), 30),
    ("USD", "RUB", "semi_auto", D("1"), D("95.5"), D("1"), D("10"), D("3000"), 30),
    ("EUR", "USDT", "manual", D("1"), D("1.07"), D("0.5"), D("20"), D("10000"), 60),
    ("RUB", "USD", "auto", D("100"), D("1"), D("0"), D("1000"), D("500000"), 30),
    ("USD", "EUR", "manual", D("1"), D("0.91"), D("0"), D("10"), D("2000"), 60),
]


# The demo's codes in the monitors' conventions (docs/monitors.md), so /rates.xml lists the demo directions; set
# only where a currency has none and no other currency uses the code (an admin's choice is never overwritten).
MONITOR_CODES = {"USD": "WIREUSD", "EUR": "WIREEUR", "RUB": "CARDRUB", "USDT": "USDTTRC20", "LTC": "LTC",
                "USDTERC20": "USDTERC20"}


# Litecoin on a real regtest node (docs/chains.md), when it runs here (LITECOIN_ENABLED, set by make run and the
# end-to-end tests). The reserve starts at 0 and follows the hot wallet's balance (payments' balance_changed).
LITECOIN = [("LTC", "Litecoin (regtest)", 8, "LTC-HOT", D("0"), "litecoin")]
LITECOIN_DIRECTIONS = [
    ("LTC", "EUR", "auto", D("1"), D("80"), D("0.5"), D("0.01"), D("100"), 60),
    ("EUR", "LTC", "auto", D("80"), D("1"), D("0.5"), D("1"), D("5000"), 30),
]


# The USDT-like ERC-20 on the local EVM chain (EVM_ENABLED): its own code, so the sandbox's USDT stays as it is.
EVM = [("USDTERC20", "Tether USD (ERC-20, local chain)", 6, "USDT-HOT", D("0"), "evm")]
EVM_DIRECTIONS = [
    ("USDTERC20", "EUR", "auto", D("1"), D("0.92"), D("0.5"), D("5"), D("5000"), 30),
    ("EUR", "USDTERC20", "auto", D("1"), D("1.07"), D("0.5"), D("5"), D("5000"), 30),
]


def _on(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def seed(db=None):
    db = db or Database(schema="orders", maxconn=1)
    catalogue.add_missing(db, CURRENCIES, DIRECTIONS)
    if _on("LITECOIN_ENABLED"):
        catalogue.add_missing(db, LITECOIN, LITECOIN_DIRECTIONS)
    if _on("EVM_ENABLED"):
        catalogue.add_missing(db, EVM, EVM_DIRECTIONS)
    catalogue.add_missing_monitor_codes(db, MONITOR_CODES)
    return db


if __name__ == "__main__":
    seed()
    print("seeded currencies and directions")
