"""Payment detection latency and the CPU cost of polling, against a system started by `make run`.

    python bench/payments.py --url http://127.0.0.1:8000 --sandbox-url http://127.0.0.1:8090

Phase 1 (detection): creates `--orders` auto orders, then pays each through the sandbox's HTTP API at a random
moment within `--spread` seconds (a customer's bank transfer with the order's reference). Detection time of an
order = the order's `paid` time (its status history) minus the sandbox transfer's time; both are PostgreSQL
timestamps of the same server, and nothing is subtracted: the wait for the next poll counts.

Phase 2 (polling CPU): creates `--accounts` accounts at the sandbox and starts one more payments instance
(`nameko run services.payments.service`, same database and broker) that polls just those accounts every
`--cpu-interval` seconds; after its first full round it measures that process's CPU time (/proc) over
`--cpu-seconds` and counts its polls (its /metrics). The instance also does what every instance does (outbox relay,
reconciler, a share of events), so the figure is an upper bound for polling alone. Stopped at the end.

Prints one JSON line, last: {"detect_p50_ms", "detect_p99_ms" (phase 1), "poll_interval_s" (the running service's,
as given by --poll-interval or PAYMENTS_POLL_SECONDS), "accounts" (polled in phase 2), "poll_cpu_share" (CPU seconds
per wall second of the polling instance, i.e. the share of one core), "polls_in_window", ...}.
"""
import argparse
import datetime
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else None


def ts(text):
    return datetime.datetime.fromisoformat(text)


class Client:
    def __init__(self, url, sandbox_url):
        self.url = url.rstrip("/")
        self.sandbox_url = sandbox_url.rstrip("/")
        self.local = threading.local()

    @property
    def http(self):
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def api(self, method, path, **kw):
        return self.http.request(method, self.url + path, timeout=30, **kw)

    def sandbox(self, method, path, **kw):
        return self.http.request(method, self.sandbox_url + path, timeout=30, **kw)

    def wallet(self, currency, balance="0", account=None, owner="bench"):
        body = {"currency": currency, "balance": balance, "owner": owner}
        if account:
            body["account"] = account
        r = self.sandbox("POST", "/api/accounts", json=body)
        if r.status_code != 201:
            raise SystemExit("sandbox: cannot create an account: %s %s" % (r.status_code, r.text))
        return r.json()["account"]


# -- phase 1: detection latency ---------------------------------------------------------------------------------
def detection(client, n_orders, spread, seed):
    rng = random.Random(seed)
    directions = client.api("GET", "/api/v1/directions").json()
    auto = min((d for d in directions if d["exchange_type"] == "auto"), key=lambda d: Decimal(d["min_amount"]))
    payer = client.wallet(auto["currency_in"], balance=str(Decimal(auto["min_amount"]) * n_orders * 2))
    recipient = client.wallet(auto["currency_out"])

    def create(i):
        r = client.api("POST", "/api/v1/orders", json={
            "direction_id": auto["id"], "amount_in": auto["min_amount"], "recipient": recipient,
            "email": "bench-pay-%d@example.com" % i})
        if r.status_code != 201:
            raise SystemExit("cannot create an order: %s %s" % (r.status_code, r.text))
        return r.json()
    with ThreadPoolExecutor(8) as pool:
        orders = list(pool.map(create, range(n_orders)))

    started = time.monotonic()
    offsets = sorted(rng.uniform(0, spread) for _ in orders)
    transfers = {}

    def pay(item):
        order, offset = item
        delay = started + offset - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        pay_to = order["pay_to"]
        r = client.sandbox("POST", "/api/transfers", json={
            "from_account": payer, "to_account": pay_to["account"], "amount": pay_to["amount"],
            "currency": pay_to["currency"], "reference": pay_to["reference"]})
        if r.status_code != 201:
            raise SystemExit("sandbox transfer failed: %s %s" % (r.status_code, r.text))
        transfers[order["id"]] = r.json()
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(pay, zip(orders, offsets)))

    detect_ms, pending = {}, {o["id"]: o for o in orders}
    deadline = time.monotonic() + spread + 120
    while pending and time.monotonic() < deadline:
        for order_id, order in list(pending.items()):
            current = client.api("GET", "/api/v1/orders/%s" % order["token"]).json()
            paid = [h for h in current.get("history", []) if h["to_status"] == "paid"]
            if paid:
                delta = ts(paid[0]["at"]) - ts(transfers[order_id]["created_at"])
                detect_ms[order_id] = delta.total_seconds() * 1000
                del pending[order_id]
        time.sleep(0.5)
    return list(detect_ms.values()), len(pending), auto


# -- phase 2: polling CPU ---------------------------------------------------------------------------------------
def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def polls_done(port):
    try:
        text = requests.get("http://127.0.0.1:%d/metrics" % port, timeout=5).text
    except requests.RequestException:
        return None
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("exchanger_payments_polls_total{") and 'outcome="ok"' in line)


def polling_cpu(client, n_accounts, interval, seconds, sandbox_url):
    tag = uuid.uuid4().hex[:6].upper()
    with ThreadPoolExecutor(16) as pool:
        accounts = list(pool.map(lambda i: client.wallet("USD", account="BENCH-%s-%04d" % (tag, i),
                                                         owner="bench-poll"), range(n_accounts)))
    port = free_port()
    env = dict(os.environ, PYTHONPATH=ROOT, SANDBOX_URL=sandbox_url, PAYMENTS_POLL_SECONDS=str(interval),
               PAYMENTS_METRICS_PORT=str(port), PAYMENTS_POLL_CONCURRENCY="20", LOG_LEVEL="WARNING",
               PAYMENT_ACCOUNTS=json.dumps([{"system": "sandbox", "account": a, "currency": "USD", "payout": False}
                                            for a in accounts]))
    env.pop("CRASH_AT", None)
    nameko = os.path.join(os.path.dirname(sys.executable), "nameko")
    proc = subprocess.Popen([nameko, "run", "services.payments.service", "--config",
                             "services/payments/config.yml"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + interval + 120
        while (polls_done(port) or 0) < n_accounts:   # the first round (catch-up) is done
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the polling instance did not complete a first round")
            time.sleep(0.5)
        polls0, cpu0, t0 = polls_done(port), cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        polls1, cpu1, t1 = polls_done(port), cpu_seconds(proc.pid), time.monotonic()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return {"poll_cpu_share": round((cpu1 - cpu0) / (t1 - t0), 4), "poll_cpu_seconds": round(cpu1 - cpu0, 2),
            "poll_window_s": round(t1 - t0, 1), "polls_in_window": int(polls1 - polls0),
            "polls_expected": int(n_accounts * (t1 - t0) / interval)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--sandbox-url", default="http://127.0.0.1:%s" % os.environ.get("SANDBOX_PORT", "8090"))
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--spread", type=float, default=30.0, help="seconds over which the payments are made")
    parser.add_argument("--poll-interval", type=float, default=float(os.environ.get("PAYMENTS_POLL_SECONDS", 2)),
                        help="the running payments service's PAYMENTS_POLL_SECONDS (reported)")
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--cpu-interval", type=float, default=15.0)
    parser.add_argument("--cpu-seconds", type=float, default=60.0)
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)

    client = Client(args.url, args.sandbox_url)
    latencies, missing, direction = detection(client, args.orders, args.spread, args.seed)
    result = {
        "detect_p50_ms": round(percentile(latencies, 0.5), 1) if latencies else None,
        "detect_p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
        "detect_max_ms": round(max(latencies), 1) if latencies else None,
        "orders": args.orders, "orders_not_paid": missing,
        "direction": "%s->%s %s" % (direction["currency_in"], direction["currency_out"], direction["exchange_type"]),
        "poll_interval_s": args.poll_interval,
        "accounts": args.accounts,
    }
    print("detection: %s" % json.dumps(result), file=sys.stderr)
    if not args.skip_cpu:
        result.update(polling_cpu(client, args.accounts, args.cpu_interval, args.cpu_seconds, args.sandbox_url))
        result["poll_cpu_interval_s"] = args.cpu_interval
    print(json.dumps(result))
    return 0 if not missing else 1


if __name__ == "__main__":
    sys.exit(main())
