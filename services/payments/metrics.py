"""Prometheus metrics of the payments service (module level: registered once per process), served on
PAYMENTS_METRICS_PORT by libs.metrics.EntrypointMetrics.

Alert on: exchanger_payments_poll_age_seconds > a few poll intervals (an account is not being read: payments
would be missed for that long), exchanger_payouts_sending_oldest_seconds > minutes (a payout nobody resolved),
exchanger_payments_unmatched > 0 (money waiting for an operator), any increase of
exchanger_payout_late_success_total (a payout resolved failed was paid after all: the order must not be paid again).
"""
import threading
import time

from prometheus_client import Counter, Gauge

POLLS = Counter("exchanger_payments_polls_total", "Account polls", ["account", "outcome"])
INGESTED = Counter("exchanger_payments_ingested_total", "New incoming payments", ["outcome"])
PAYOUTS = Counter("exchanger_payouts_total", "Payout provider calls and their outcome", ["outcome"])
RECONCILED = Counter("exchanger_payouts_reconciled_total", "Payouts in doubt resolved by looking them up",
                     ["outcome"])
LATE_SUCCESS = Counter("exchanger_payout_late_success_total",
                       "Payouts the provider reported sent after they were resolved failed (alert on any)", ["kind"])
UNMATCHED = Gauge("exchanger_payments_unmatched", "Incoming payments waiting for an operator")
SENDING = Gauge("exchanger_payouts_sending", "Payouts committed as sending and not yet resolved")
SENDING_OLDEST = Gauge("exchanger_payouts_sending_oldest_seconds", "Age of the oldest unresolved payout")
BALANCE = Gauge("exchanger_payments_balance", "Balance of a payment account (for dashboards, not for money)",
                ["account", "currency"])
POLL_AGE = Gauge("exchanger_payments_poll_age_seconds",
                 "Seconds since the last successful poll of the account by any instance", ["account"])

_lock = threading.Lock()
_last_ok = {}


def set_last_ok(account, unix_time):
    """Remember when the account was last polled successfully; the gauge computes the age when scraped."""
    with _lock:
        new = account not in _last_ok
        _last_ok[account] = unix_time
    if new:
        POLL_AGE.labels(account).set_function(lambda a=account: time.time() - _last_ok.get(a, 0))

# Chain rails (docs/chains.md). Alert on any increase of exchanger_chain_deposits_total{outcome="reversed"}: a
# deposit credited at its required depth was taken out of the chain by a reorganisation.
CHAIN_REORGS = Counter("exchanger_chain_reorgs_total", "Reorganisations the chain follower rolled back", ["system"])
CHAIN_DEPOSITS = Counter("exchanger_chain_deposits_total", "Chain deposits by what happened to them",
                         ["system", "outcome"])
