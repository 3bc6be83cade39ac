"""Randomized crash injection: the proof of "nothing lost, nothing paid twice" (docs/reliability.md) on the whole
system.

    .venv/bin/python bench/chaos.py --runs 20 --seed 1 [--port-base 28000] [--database-url ... --amqp-uri ...]

It starts the system once, prepared as `make run` prepares it (bench/chaos_system.py: the e2e environment on this
bench's ports, database and vhost, deploy/local/prepare.sh), but runs the Procfile's processes under its own
supervision instead of honcho, so it can SIGKILL one process (its whole process group) and restart it, or restart
it with CRASH_AT=<point> for one life. The database and the vhost are wiped at start.

Each run (its own seed, drawn from --seed) drives a small mix of orders of every exchange type over HTTP: exact,
partial, over and late payments through the sandbox's API, an unmatched payment, operator payouts, finalize and
cancel, "I have paid", a customer's cancel, an unpaid order left to expire, a referred manual exchange that credits
the partner and a partner withdrawal paid through payments. Meanwhile ONE fault, chosen at random:
  kill:<process>     SIGKILL of a process at a random moment, restarted after a random pause
  crash:<point>      the owner restarted with CRASH_AT=<point> (libs/faults.py) for one life, then without
  amqp_drop          `rabbitmqctl close_all_connections` on the bench's vhost, once or twice
  pg_terminate       pg_terminate_backend() of every backend of the bench's database, a few times
  sandbox_error / sandbox_hang / sandbox_refuse
                     the sandbox's fault switches (POST /api/faults: 500, a hang past the adapter's timeout, a
                     definite refusal; before or after the transfer executes; sandbox/README.md)
Fault kinds are drawn in shuffled rounds (each kind once per round of seven runs); the process, crash point,
moment and parameters are the run's own random draws. Then it waits until the system is quiet (outboxes
published, queues empty, no payout in flight, every payment ingested, reporting caught up) and checks the
invariants of bench/chaos_checks.py, plus each scenario's expected outcome. A violation keeps its evidence
in --artifacts/violations/run-<n>-seed-<s>/ (seed, fault, invariant, rows, the processes' log tails).

Prints one JSON line last: {"runs", "violations", "faults": {name: count}, "seconds", "seed"}.
"""
import argparse
import collections
import json
import os
import random
import subprocess
import sys
import threading
import time
import traceback
import uuid
from decimal import Decimal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import requests  # noqa: E402

from bench import chaos_checks  # noqa: E402
from bench.chaos_system import database_of, start_system, vhost_of  # noqa: E402

SERVICES = ("orders", "payments", "notifier", "reporting", "gateway", "sandbox", "smtp")
# Crash points (grep crash_point) and the processes that pass them.
CRASH_POINTS = {
    "relay_before_publish": ("orders", "payments", "notifier"),
    "relay_after_publish": ("orders", "payments", "notifier"),
    "before_provider_call": ("payments",),
    "after_provider_call": ("payments",),
    "notifier_before_send": ("notifier",),
    "notifier_after_send": ("notifier",),
}
CURRENCIES = ("USD", "EUR", "RUB", "USDT")
STEP_TIMEOUT = 40.0   # how long a scenario waits for one status before it gives up (and the checks speak)


class Stuck(Exception):
    pass


# -- the customer, the operator and the customer's bank, patient through faults ------------------------------------
class Driver:
    def __init__(self, system, admin_token, partner):
        self.system = system
        self.admin_token = admin_token
        self.partner = partner

    def _retrying(self, call, ok, deadline, retry_statuses=(500, 502, 503, 504)):
        """Repeat `call` (idempotent by key or by compare-and-set) through connection errors and 5xx."""
        last = None
        while time.monotonic() < deadline:
            try:
                response = call()
            except requests.RequestException as exc:
                last = repr(exc)
                time.sleep(0.3)
                continue
            if response.status_code in ok:
                return response
            last = "%s %s" % (response.status_code, response.text[:300])
            if response.status_code not in retry_statuses:
                return response
            time.sleep(0.3)
        raise Stuck("gave up: %s" % last)

    def create_order(self, direction, amount, partner_code=None):
        key = "chaos-" + uuid.uuid4().hex
        body = {"direction_id": direction["id"], "amount_in": str(amount),
                "email": "chaos-%s@example.com" % uuid.uuid4().hex[:10],
                "recipient": "CHAOS-RCPT-%s" % direction["currency_out"]}
        if partner_code:
            body["partner_code"] = partner_code
        r = self._retrying(lambda: self.system.api("POST", "/api/v1/orders", json=body,
                                                   headers={"Idempotency-Key": key}),
                           (200, 201), time.monotonic() + STEP_TIMEOUT)
        if r.status_code not in (200, 201):
            raise Stuck("order refused: %s %s" % (r.status_code, r.text[:300]))
        return r.json()

    def pay(self, order, amount=None, reference=None, to_account=None, currency=None):
        """The customer's bank transfer (an idempotency key of its own, so a retry never pays twice)."""
        pay_to = order["pay_to"] if order else {}
        currency = currency or pay_to["currency"]
        body = {"from_account": "CHAOS-PAYER-%s" % currency, "to_account": to_account or pay_to["account"],
                "amount": str(amount if amount is not None else pay_to["amount"]), "currency": currency,
                "reference": pay_to.get("reference", "") if reference is None else reference}
        key = "chaos-pay-" + uuid.uuid4().hex
        # A sandbox fault meant for payouts may hit the customer's transfer: 422 refused is retried with the key.
        r = self._retrying(lambda: self.system.sandbox("POST", "/api/transfers", json=body,
                                                       headers={"Idempotency-Key": key}),
                           (200, 201), time.monotonic() + STEP_TIMEOUT, retry_statuses=(422, 500, 502, 503, 504))
        if r.status_code not in (200, 201):
            raise Stuck("payment refused: %s %s" % (r.status_code, r.text[:300]))
        return r.json()

    def staff(self, order_id, action, body=None):
        """An operator's action; a lost answer is retried and a 409 after that means it went through already."""
        r = self._retrying(lambda: self.system.api("POST", "/api/v1/admin/orders/%d/%s" % (order_id, action),
                                                   token=self.admin_token, json=body or {}),
                           (200,), time.monotonic() + STEP_TIMEOUT)
        return r.status_code

    def customer(self, order, action):
        r = self._retrying(lambda: self.system.api("POST", "/api/v1/orders/%s/%s" % (order["token"], action),
                                                   json={}),
                           (200,), time.monotonic() + STEP_TIMEOUT)
        return r.status_code

    def status(self, order_id):
        return self.system.sql("SELECT status, payment_flag FROM orders.orders WHERE id = %s", (order_id,))[0]

    def wait(self, order_id, *statuses, timeout=STEP_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            row = self.status(order_id)
            if row["status"] in statuses:
                return row
            if time.monotonic() > deadline:
                raise Stuck("order %s is %s, waited for %s" % (order_id, row["status"], "/".join(statuses)))
            time.sleep(0.25)

    def expire_now(self, order_id):
        """Move the payment window into the past (as tests/e2e/test_payments_flow.py does); the sweep expires it."""
        self.system.sql("UPDATE orders.orders SET expires_at = now() - interval '1 minute' "
                        "WHERE id = %s AND status = 'new'", (order_id,))
        row = self.wait(order_id, "expired")
        # Payments judges "late" by its own copy of the order, which learns the moved window only from the
        # `expired` event (a real window never moves): pay only once the copy has it too.
        deadline = time.monotonic() + STEP_TIMEOUT
        while not self.system.sql("SELECT 1 FROM payments.orders WHERE id = %s AND status = 'expired'", (order_id,)):
            if time.monotonic() > deadline:
                raise Stuck("payments' copy of order %s never became expired" % order_id)
            time.sleep(0.25)
        return row


# -- scenarios: each returns the order ids it made and the statuses each may end in --------------------------------
def _direction(directions, kind, currency_in):
    return next(d for d in directions if d["exchange_type"] == kind and d["currency_in"] == currency_in)


def _amount(direction, rng, low=None, high=None):
    low = Decimal(low or direction["min_amount"])
    high = Decimal(high or low * 3)
    return (low + (high - low) * Decimal(rng.randint(0, 100)) / 100).quantize(Decimal("0.01"))


def scenario_auto_exact(d, dirs, rng, ctx):
    direction = _direction(dirs, "auto", rng.choice(["USDT", "RUB"]))
    referred = bool(d.partner) and rng.random() < 0.5
    order = d.create_order(direction, _amount(direction, rng), partner_code=d.partner["code"] if referred else None)
    ctx.expect(order, "completed", payout=True, credit=referred)
    d.pay(order)
    d.wait(order["id"], "completed", "payout_error")


def scenario_semi_auto(d, dirs, rng, ctx):
    direction = _direction(dirs, "semi_auto", "USD")
    order = d.create_order(direction, _amount(direction, rng))
    ctx.expect(order, "completed", payout=True)
    d.pay(order)
    d.wait(order["id"], "paid")
    d.staff(order["id"], "payout")
    d.wait(order["id"], "completed", "payout_error")


def scenario_partial(d, dirs, rng, ctx):
    direction = _direction(dirs, "auto", "USDT")
    order = d.create_order(direction, _amount(direction, rng, "20", "60"))
    decision = rng.choice(["cancel", "finalize", "payout", "wait"])
    ctx.expect(order, {"cancel": "canceled", "finalize": "completed", "payout": "payout_error",
                       "wait": "paid"}[decision])
    d.pay(order, amount=Decimal(order["pay_to"]["amount"]) - Decimal("1.5"))
    d.wait(order["id"], "paid")
    if decision == "cancel":
        d.staff(order["id"], "cancel", {"reason": "partial payment refunded"})
    elif decision == "finalize":
        d.staff(order["id"], "finalize", {"notice": "settled by hand"})
    elif decision == "payout":
        d.staff(order["id"], "payout")   # more than the payment buys: refused without a call, payout_error
        d.wait(order["id"], "payout_error", "completed")


def scenario_over(d, dirs, rng, ctx):
    direction = _direction(dirs, "auto", "USDT")
    order = d.create_order(direction, _amount(direction, rng))
    ctx.expect(order, "completed", payout=True)
    d.pay(order, amount=Decimal(order["pay_to"]["amount"]) + Decimal("2.25"))
    d.wait(order["id"], "paid")
    d.staff(order["id"], "payout")
    d.wait(order["id"], "completed", "payout_error")


def scenario_late(d, dirs, rng, ctx):
    direction = _direction(dirs, "auto", rng.choice(["USDT", "RUB"]))
    order = d.create_order(direction, _amount(direction, rng))
    ctx.expect(order, "completed", payout=True)
    d.expire_now(order["id"])
    d.pay(order)
    d.wait(order["id"], "paid")
    d.staff(order["id"], "payout")
    d.wait(order["id"], "completed", "payout_error")


def scenario_manual_finalize(d, dirs, rng, ctx):
    """A referred manual exchange: paid at the sandbox, "I have paid", processed, finalized; the partner earns."""
    direction = _direction(dirs, "manual", "EUR")
    order = d.create_order(direction, _amount(direction, rng, "100", "300"),
                           partner_code=d.partner["code"] if d.partner else None)
    ctx.expect(order, "completed", credit=bool(d.partner))
    d.pay(order)
    d.customer(order, "paid")
    d.wait(order["id"], "payment_claimed")
    d.staff(order["id"], "process", {"notice": "funds found"})
    d.wait(order["id"], "processing")
    d.staff(order["id"], "finalize", {"notice": "paid out by hand"})
    d.wait(order["id"], "completed")


def scenario_manual_cancel(d, dirs, rng, ctx):
    direction = _direction(dirs, "manual", "USD")
    order = d.create_order(direction, _amount(direction, rng))
    ctx.expect(order, "canceled")
    d.customer(order, "paid")
    d.wait(order["id"], "payment_claimed")
    d.staff(order["id"], "cancel", {"reason": "no payment found"})
    d.wait(order["id"], "canceled")


def scenario_unpaid_expires(d, dirs, rng, ctx):
    direction = rng.choice([_direction(dirs, "auto", "USDT"), _direction(dirs, "semi_auto", "USD")])
    order = d.create_order(direction, _amount(direction, rng))
    ctx.expect(order, "expired")
    d.expire_now(order["id"])


def scenario_customer_cancel(d, dirs, rng, ctx):
    direction = _direction(dirs, "semi_auto", "USD")
    order = d.create_order(direction, _amount(direction, rng))
    ctx.expect(order, "canceled")
    d.customer(order, "cancel")
    d.wait(order["id"], "canceled")


def scenario_unmatched(d, dirs, rng, ctx):
    """A payment nobody can match (no reference): it must be listed unmatched (chaos_checks)."""
    d.pay(None, amount=_amount({"min_amount": "5"}, rng), reference="chaos gift %s" % rng.randint(0, 10 ** 6),
          to_account="EXCH-USD", currency="USD")


def scenario_withdrawal(d, dirs, rng, ctx):
    """The partner withdraws part of a balance, approved as a payout through payments."""
    if not d.partner:
        return
    rows = d.system.sql("""SELECT DISTINCT ON (currency) currency, balance_after FROM orders.partner_ledger
                            WHERE partner_id = %s ORDER BY currency, id DESC""", (d.partner["id"],))
    funded = [r for r in rows if r["balance_after"] >= Decimal("0.05")]
    if not funded:
        return
    row = rng.choice(funded)
    amount = (row["balance_after"] / 4).quantize(Decimal("0.01"), rounding="ROUND_DOWN")
    key = "chaos-w-" + uuid.uuid4().hex
    r = d._retrying(lambda: d.system.api("POST", "/api/v1/partner/withdrawals", token=d.partner["token"], json={
        "amount": str(amount), "currency": row["currency"], "to_account": "CHAOS-RCPT-%s" % row["currency"]},
        headers={"Idempotency-Key": key}), (201,), time.monotonic() + STEP_TIMEOUT)
    if r.status_code != 201:
        return   # the balance moved meanwhile (another run's withdrawal): nothing asked
    withdrawal = r.json()
    ctx.withdrawals.append(withdrawal["id"])
    d._retrying(lambda: d.system.sensitive("POST", "/api/v1/admin/withdrawals/%s/approve" % withdrawal["id"],
                                           token=d.admin_token, json={"method": "payout"}),
                (200,), time.monotonic() + STEP_TIMEOUT)
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        status = d.system.sql("SELECT status FROM orders.partner_withdrawals WHERE id = %s",
                              (withdrawal["id"],))[0]["status"]
        if status in ("paid", "failed"):
            return
        time.sleep(0.25)


SCENARIOS = {
    "auto_exact": scenario_auto_exact,
    "semi_auto": scenario_semi_auto,
    "partial": scenario_partial,
    "over": scenario_over,
    "late": scenario_late,
    "manual_finalize": scenario_manual_finalize,
    "manual_cancel": scenario_manual_cancel,
    "unpaid_expires": scenario_unpaid_expires,
    "customer_cancel": scenario_customer_cancel,
    "unmatched": scenario_unmatched,
    "withdrawal": scenario_withdrawal,
}
# Always in a run: the payout paths most faults aim at.
CORE_SCENARIOS = ("auto_exact", "semi_auto", "manual_finalize")


# -- faults: one per run, chosen by the run's seed -----------------------------------------------------------------
class Fault:
    """One fault of a run: `run()` in a thread while the scenarios drive, `finish()` restores the system."""
    refusals = False   # may a payout be refused for good (payout_error, a withdrawal failed)?

    def __init__(self, system, rng):
        self.system = system
        self.rng = rng
        self.notes = []

    def run(self):
        pass

    def finish(self):
        pass


class Kill(Fault):
    def __init__(self, system, rng, process):
        super().__init__(system, rng)
        self.process = process
        self.name = "kill:%s" % process

    def run(self):
        time.sleep(self.rng.uniform(0.1, 3.0))   # a run's payments and payouts happen in its first seconds
        self.system.supervisor.kill(self.process)
        down = self.rng.uniform(0.2, 3.0)
        self.notes.append("SIGKILL %s, down %.1fs" % (self.process, down))
        time.sleep(down)
        self.system.supervisor.start(self.process)


class Crash(Fault):
    def __init__(self, system, rng, point, process):
        super().__init__(system, rng)
        self.point, self.process = point, process
        self.name = "crash:%s" % point if len(CRASH_POINTS[point]) == 1 else "crash:%s@%s" % (point, process)

    def run(self):
        self.system.supervisor.restart(self.process, {"CRASH_AT": self.point})

    def finish(self):
        sup = self.system.supervisor
        hit = [e for e in sup.exits if e[1] == self.process and (e[3] or {}).get("CRASH_AT") == self.point]
        self.notes.append("crash point %s %s" % (self.point, "hit" if hit else "not reached"))
        if sup.extra_env.get(self.process, {}).get("CRASH_AT"):
            sup.restart(self.process)   # the point was not reached in this run: its next life runs without it


class AmqpDrop(Fault):
    name = "amqp_drop"

    def run(self):
        vhost = vhost_of(self.system.amqp_uri)
        for _ in range(self.rng.randint(1, 2)):
            time.sleep(self.rng.uniform(0.1, 2.5))
            out = subprocess.run(["rabbitmqctl", "-q", "close_all_connections", "-p", vhost, "chaos bench"],
                                 capture_output=True, text=True, timeout=60)
            self.notes.append("close_all_connections -p %s: rc %s %s" % (vhost, out.returncode, out.stderr[-200:]))


class PgTerminate(Fault):
    name = "pg_terminate"

    def run(self):
        for _ in range(self.rng.randint(2, 4)):
            time.sleep(self.rng.uniform(0.1, 1.5))
            killed = self.system.sql(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                (database_of(self.system.database_url),))[0]["n"]
            self.notes.append("terminated %s backends" % killed)


class SandboxFault(Fault):
    """The sandbox's fault switches (sandbox/README.md): error (500), timeout (a hang past the adapter's
    SANDBOX_TIMEOUT_SECONDS, then 504), refuse (422, a definite decline); before or after a transfer executes."""

    def __init__(self, system, rng, mode):
        super().__init__(system, rng)
        self.mode = mode
        self.name = {"error": "sandbox_error", "timeout": "sandbox_hang", "refuse": "sandbox_refuse"}[mode]
        self.refusals = mode == "refuse"

    def run(self):
        time.sleep(self.rng.uniform(0.0, 1.5))
        operations = ["transfer", "lookup", "any"] if self.mode == "refuse" else \
            ["transfer", "history", "balance", "lookup", "any"]
        body = {"operation": self.rng.choice(operations), "mode": self.mode, "count": self.rng.randint(1, 4),
                "apply": self.rng.choice(["before", "after"])}
        if self.mode == "timeout":
            body["delay_s"] = str(self.rng.choice([2.5, 3, 4]))
        account = self.rng.choice([None, "EXCH-EUR", "EXCH-USD", "EXCH-USDT", "EXCH-RUB"])
        if account:
            body["account"] = account
        r = self.system.sandbox("POST", "/api/faults", json=body, timeout=30)
        self.notes.append("POST /api/faults %s -> %s" % (json.dumps(body), r.status_code))

    def finish(self):
        for _ in range(50):
            try:
                self.system.sandbox("DELETE", "/api/faults", timeout=10)
                return
            except requests.RequestException:
                time.sleep(0.3)


FAULT_KINDS = ("kill", "crash", "amqp_drop", "pg_terminate", "sandbox_error", "sandbox_hang", "sandbox_refuse")


def choose_fault(system, rng, kind):
    if kind == "kill":
        return Kill(system, rng, rng.choice(SERVICES))
    if kind == "crash":
        point = rng.choice(sorted(CRASH_POINTS))
        return Crash(system, rng, point, rng.choice(CRASH_POINTS[point]))
    if kind == "amqp_drop":
        return AmqpDrop(system, rng)
    if kind == "pg_terminate":
        return PgTerminate(system, rng)
    return SandboxFault(system, rng, {"sandbox_error": "error", "sandbox_hang": "timeout",
                                      "sandbox_refuse": "refuse"}[kind])


# -- one run -----------------------------------------------------------------------------------------------------------
class RunContext:
    def __init__(self):
        self.expected = []         # (order, status, payout, credit)
        self.withdrawals = []
        self.stuck = []            # scenarios that could not go on: (scenario, message)
        self.lock = threading.Lock()

    def expect(self, order, status, payout=False, credit=False):
        with self.lock:
            self.expected.append((order, status, payout, credit))


def drive(driver, directions, rng, ctx, extra):
    names = list(CORE_SCENARIOS) + [rng.choice(sorted(SCENARIOS)) for _ in range(extra)]
    threads = []
    for name in names:
        scenario_rng = random.Random(rng.randrange(2 ** 32))

        def one(name=name, scenario_rng=scenario_rng):
            try:
                SCENARIOS[name](driver, directions, scenario_rng, ctx)
            except Stuck as exc:
                ctx.stuck.append((name, str(exc)))
            except Exception:  # noqa: BLE001 - the bench's own trouble is evidence too
                ctx.stuck.append((name, traceback.format_exc()))
        thread = threading.Thread(target=one, name="scenario-" + name, daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    return names


def outcome_violations(driver, ctx, fault):
    rows = []
    for order, status, payout, credit in ctx.expected:
        current = driver.status(order["id"])
        if current["status"] != status:
            rows.append({"order_id": order["id"], "reference": order["reference"], "expected": status,
                         "status": current["status"], "payment_flag": current["payment_flag"],
                         "problem": "scenario ended elsewhere"})
    for withdrawal_id in ctx.withdrawals:
        status = driver.system.sql("SELECT status FROM orders.partner_withdrawals WHERE id = %s",
                                   (withdrawal_id,))[0]["status"]
        if status != "paid" and not (status == "failed" and fault.refusals):
            rows.append({"withdrawal_id": withdrawal_id, "status": status, "problem": "withdrawal not paid"})
    for name, message in ctx.stuck:
        rows.append({"scenario": name, "message": message[-2000:], "problem": "scenario could not go on"})
    return rows


def repair_refusals(driver, ctx):
    """After a refusal fault, the operator retries what was refused for good (a new attempt, a new key)."""
    for order, status, payout, _ in ctx.expected:
        if payout and status == "completed" and driver.status(order["id"])["status"] == "payout_error":
            try:
                driver.staff(order["id"], "payout")
            except Stuck as exc:
                ctx.stuck.append(("repair", str(exc)))


def row_key(invariant, row):
    if "running" in row:
        # One ledger row out of step shifts every later row of that balance by the same amount: one violation.
        return (invariant, row.get("problem"), row["partner_id"], row["currency"],
                str((row["balance_after"] - row["running"]).normalize()))
    for field in ("order_id", "transfer_id", "payment_id", "withdrawal_id", "queue", "id", "scenario"):
        if row.get(field) is not None:
            return (invariant, row.get("problem"), field, str(row[field]))
    return (invariant, json.dumps(row, sort_keys=True, default=str))


class Bench:
    def __init__(self, args):
        self.args = args
        self.seen = set()
        self.violations = 0
        self.faults = collections.Counter()
        self.system = None

    def channel(self):
        from libs.amqp_publish import connect
        return connect(self.system.amqp_uri).channel()

    def setup(self):
        a = self.args
        self.system = start_system(a.database_url, a.amqp_uri, a.port_base, a.artifacts)
        s = self.system
        for currency in CURRENCIES:
            for owner, balance in (("CHAOS-PAYER", "100000000"), ("CHAOS-RCPT", "0")):
                r = s.sandbox("POST", "/api/accounts", json={"account": "%s-%s" % (owner, currency),
                                                              "currency": currency, "balance": balance,
                                                              "owner": owner.lower()})
                assert r.status_code in (201, 409), r.text
        token = s.admin_token()
        current = s.api("GET", "/api/v1/admin/commission", token=token).json()
        r = s.sensitive("PUT", "/api/v1/admin/commission", token=token,
                        json={"min_withdrawal": "0.01", "version": current.get("version")})
        assert r.status_code == 200, r.text
        self.partner = None
        if not a.no_partner:
            from tests.e2e.partners_support import become_partner, sign_up
            partner = become_partner(s, sign_up(s))
            partner["id"] = s.sql("SELECT id FROM orders.partners WHERE code = %s", (partner["code"],))[0]["id"]
            # A generous rule of the partner's own, so withdrawals have a balance to draw on every run.
            r = s.sensitive("PUT", "/api/v1/admin/partners/%d" % partner["id"], token=token,
                            json={"percent": "20", "base": "amount"})
            assert r.status_code == 200, r.text
            # Its destinations are confirmed up front: the letter's link is the subject of
            # tests/e2e/test_account_security.py, not of these runs.
            s.sql("INSERT INTO orders.withdrawal_destinations (partner_id, currency, to_account, confirmed_at) "
                  "SELECT %s, c, 'CHAOS-RCPT-' || c, now() FROM unnest(%s::text[]) c ON CONFLICT DO NOTHING",
                  (partner["id"], list(CURRENCIES)))
            self.partner = partner
        self.driver = Driver(s, token, self.partner)
        self.directions = s.api("GET", "/api/v1/directions").json()
        ok, state = chaos_checks.wait_quiet(s, self.channel, timeout=60)
        assert ok, "not quiet after setup: %s" % state

    def run_once(self, index, run_seed, kind):
        rng = random.Random(run_seed)
        fault = choose_fault(self.system, rng, kind)
        self.faults[fault.name] += 1
        ctx = RunContext()
        started = time.monotonic()
        fault_thread = threading.Thread(target=self._fault_body, args=(fault,), daemon=True)
        fault_thread.start()
        scenarios = drive(self.driver, self.directions, rng, ctx, self.args.extra_scenarios)
        fault_thread.join(timeout=120)
        fault.finish()
        sup = self.system.supervisor
        for name in list(sup.held_down):
            sup.start(name)
        quiet, state = chaos_checks.wait_quiet(self.system, self.channel, timeout=self.args.quiet_timeout)
        if fault.refusals:
            repair_refusals(self.driver, ctx)
            quiet, state = chaos_checks.wait_quiet(self.system, self.channel, timeout=self.args.quiet_timeout)
        failed = chaos_checks.check_all(self.system, self.channel,
                                        [o["id"] for o, _, _, credit in ctx.expected if credit])
        outcomes = outcome_violations(self.driver, ctx, fault)
        if outcomes:
            failed["scenario_outcomes"] = outcomes
        if not quiet:
            failed["quiet"] = [dict(state, problem="the system did not settle within %ss" % self.args.quiet_timeout)]
        new = {}
        for invariant, rows in failed.items():
            fresh = [r for r in rows if row_key(invariant, r) not in self.seen]
            self.seen.update(row_key(invariant, r) for r in rows)
            if fresh:
                new[invariant] = fresh
        count = sum(len(rows) for rows in new.values())
        self.violations += count
        info = {"run": index, "seed": run_seed, "fault": fault.name, "fault_notes": fault.notes,
                "scenarios": scenarios, "seconds": round(time.monotonic() - started, 1),
                "process_exits": [{"at": round(t, 1), "process": n, "code": c, "env": e}
                                  for t, n, c, e in sup.exits if t >= time.time() - (time.monotonic() - started)]}
        if count:
            self._keep_evidence(index, info, new)
        if not self.args.quiet:
            print(json.dumps(dict(info, violations=count, invariants=sorted(new)), default=str), file=sys.stderr,
                  flush=True)
        return count

    def _fault_body(self, fault):
        try:
            fault.run()
        except Exception:  # noqa: BLE001
            fault.notes.append("fault failed: " + traceback.format_exc())

    def _keep_evidence(self, index, info, new):
        folder = os.path.join(self.args.artifacts, "violations", "run-%03d-seed-%d" % (index, info["seed"]))
        os.makedirs(folder, exist_ok=True)
        reproduce = ("bench/chaos.py --seed %d --runs %d (this was run %d; its own seed %d)"
                     % (self.args.seed, index + 1, index, info["seed"]))
        with open(os.path.join(folder, "violation.json"), "w") as fh:
            json.dump(dict(info, reproduce=reproduce, invariants=new), fh, indent=2, default=str)
        for name, tail in self.system.supervisor.log_tails(300).items():
            with open(os.path.join(folder, "%s.log.tail" % name), "w") as fh:
                fh.write(tail)

    def main(self):
        started = time.monotonic()
        master = random.Random(self.args.seed)
        runs = 0
        bag = []   # fault kinds drawn in shuffled rounds: every kind once per round, so short runs cover them all
        try:
            self.setup()
            for index in range(self.args.runs):
                if self.args.max_seconds and time.monotonic() - started > self.args.max_seconds:
                    break
                if not bag:
                    bag = list(self.args.fault_kinds)
                    master.shuffle(bag)
                self.run_once(index, master.randrange(2 ** 31), bag.pop())
                runs += 1
        finally:
            if self.system is not None:
                self.system.supervisor.stop_all()
        return {"runs": runs, "violations": self.violations, "faults": dict(sorted(self.faults.items())),
                "seconds": round(time.monotonic() - started, 1), "seed": self.args.seed}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="default: $DATABASE_URL (wiped at start: never point it at real data)")
    parser.add_argument("--amqp-uri", default=os.environ.get("AMQP_URI"),
                        help="default: $AMQP_URI (its vhost is purged)")
    parser.add_argument("--port-base", type=int, default=int(os.environ.get("CHAOS_PORT_BASE", "28000")),
                        help="gateway port; sandbox +90, SMTP +25, Twilio stand-in +95, reporting +104, "
                             "metrics +1101..+1104")
    parser.add_argument("--artifacts", default=os.path.join(ROOT, "test-artifacts", "chaos"))
    parser.add_argument("--extra-scenarios", type=int, default=4,
                        help="scenarios drawn at random per run, besides auto, semi_auto and manual")
    parser.add_argument("--faults", default=",".join(FAULT_KINDS), help="fault kinds to draw from")
    parser.add_argument("--quiet-timeout", type=float, default=90.0)
    parser.add_argument("--max-seconds", type=float, default=0, help="stop starting runs after this long")
    parser.add_argument("--no-partner", action="store_true", help="skip the partner (sign-up by letter)")
    parser.add_argument("--quiet", action="store_true", help="no per-run line on stderr")
    args = parser.parse_args(argv)
    if not args.database_url or not args.amqp_uri:
        parser.error("give --database-url and --amqp-uri (or DATABASE_URL and AMQP_URI): both are wiped")
    args.fault_kinds = tuple(k for k in args.faults.split(",") if k)
    unknown = set(args.fault_kinds) - set(FAULT_KINDS)
    if unknown:
        parser.error("unknown faults: %s" % ", ".join(sorted(unknown)))
    return args


def main(argv=None):
    result = Bench(parse_args(argv)).main()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
