"""The partner program under load, against a system started by `make run`:

    python bench/partners.py --url http://127.0.0.1:8000 --concurrency 8 --seconds 10

Phase 1: manual exchanges completed as fast as `concurrency` operators can (create -> claim -> process -> finalize,
over the orders RPC the gateway uses), once without a partner code and once referred by a partner: what crediting
the commission inside the completion's transaction costs (completions/s and finalize latency, with vs without).
Phase 2: GET /api/v1/partner (the cabinet's stats: balances, clicks, referred orders, earnings by day) with the
partner's account token, `concurrency` clients, after phase 1 gave it many referred orders.
Phase 3: `concurrency` withdrawal requests at once, each above half the balance: how many succeed (must be 1).

The partner account is made as a person makes it (POST /api/v1/account/signup); the confirmation token is read
from the orders outbox (DATABASE_URL), where the letter's event waits, instead of from a mailbox.
Prints one JSON line last.
"""
import argparse
import http.client
import json
import os
import sys
import threading
import time
import uuid
from decimal import ROUND_DOWN, Decimal
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import psycopg2  # noqa: E402

from libs import config  # noqa: E402
from libs.rpc_client import RpcClient  # noqa: E402

STAFF = {"name": "bench", "role": "operator"}
PASSWORD = "bench partner password"


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(round(q * (len(values) - 1))))] * 1000, 2)


class Http:
    def __init__(self, url):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80

    def call(self, method, path, body=None, token=None, conn=None):
        own = conn is None
        conn = conn or http.client.HTTPConnection(self.host, self.port, timeout=30)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        data = response.read()
        if own:
            conn.close()
        return response.status, (json.loads(data) if data else None)


def make_partner(web):
    email = "bench-partner-%s@example.com" % uuid.uuid4().hex[:10]
    status, _ = web.call("POST", "/api/v1/account/signup", {"email": email, "password": PASSWORD})
    assert status == 202, status
    conn = psycopg2.connect(config.database_url())
    try:
        with conn.cursor() as cur:
            for _ in range(50):
                cur.execute("SELECT o.payload->'data'->>'confirm_url' FROM orders.outbox o JOIN orders.accounts a "
                            "ON o.aggregate_id = 'account:' || a.id WHERE a.email = %s "
                            "AND o.event_type = 'account_signup_requested'", (email,))
                row = cur.fetchone()
                if row:
                    break
                conn.rollback()
                time.sleep(0.1)
    finally:
        conn.close()
    status, _ = web.call("POST", "/api/v1/account/confirm", {"token": row[0].split("token=", 1)[1]})
    assert status == 200, status
    status, data = web.call("POST", "/api/v1/account/token", {"email": email, "password": PASSWORD})
    assert status == 200, status
    token = data["token"]
    status, data = web.call("POST", "/api/v1/partner", {}, token)
    assert status in (200, 201), status
    return email, token, data["code"]


def completions(rpc, direction, concurrency, seconds, code):
    latencies, errors, lock = [], [0], threading.Lock()
    done = [0]
    deadline = time.monotonic() + seconds

    def worker(n):
        i = 0
        while time.monotonic() < deadline:
            i += 1
            try:
                order = rpc.call("orders", "create_order", {
                    "direction_id": direction["id"], "amount_in": direction["min_amount"], "recipient": "BENCH",
                    "email": "bench-%s-%d-%d@example.com" % (uuid.uuid4().hex[:6], n, i), "partner_code": code},
                    {"ip": "127.0.0.1"})
                rpc.call("orders", "claim_paid", order["token"])
                rpc.call("orders", "process", order["id"], "bench", STAFF)
                started = time.perf_counter()
                rpc.call("orders", "finalize", order["id"], None, STAFF)
                took = time.perf_counter() - started
                with lock:
                    latencies.append(took)
                    done[0] += 1
            except Exception:  # noqa: BLE001 - counted, the run goes on
                with lock:
                    errors[0] += 1
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return {"completions_per_s": round(done[0] / elapsed, 1), "finalize_p50_ms": percentile(latencies, 0.5),
            "finalize_p99_ms": percentile(latencies, 0.99), "errors": errors[0], "completed": done[0]}


def overview_load(web, token, concurrency, seconds):
    latencies, errors, lock = [], [0], threading.Lock()
    deadline = time.monotonic() + seconds

    def worker():
        conn = http.client.HTTPConnection(web.host, web.port, timeout=30)
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                status, _ = web.call("GET", "/api/v1/partner", token=token, conn=conn)
                ok = status == 200
            except Exception:  # noqa: BLE001
                ok = False
                conn = http.client.HTTPConnection(web.host, web.port, timeout=30)
            with lock:
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors[0] += 1
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return {"overview_per_s": round(len(latencies) / elapsed, 1), "overview_p50_ms": percentile(latencies, 0.5),
            "overview_p99_ms": percentile(latencies, 0.99), "overview_errors": errors[0]}


def withdrawal_race(web, token, concurrency):
    status, data = web.call("GET", "/api/v1/partner", token=token)
    bal = next(b for b in data["balances"])
    # each a little above half the balance: at most one can fit
    amount = (Decimal(bal["balance"]) * Decimal("0.51")).quantize(Decimal("0.000001"), rounding=ROUND_DOWN)
    amount = format(amount.normalize(), "f")
    codes, lock = [], threading.Lock()
    barrier = threading.Barrier(concurrency)

    def worker():
        barrier.wait()
        status, _ = web.call("POST", "/api/v1/partner/withdrawals", {"amount": amount, "currency": bal["currency"],
                                                                     "to_account": "BENCH"}, token)
        with lock:
            codes.append(status)
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"withdrawal_requests": concurrency, "withdrawals_accepted": codes.count(201),
            "withdrawal_amount": amount, "balance_before": bal["balance"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args(argv)
    web = Http(args.url)
    rpc = RpcClient(config.amqp_uri(), timeout=30, name="bench-partners")
    try:
        directions = rpc.call("orders", "list_directions")
        direction = min((d for d in directions if d["exchange_type"] == "manual"),
                        key=lambda d: -float(d["max_amount"]))
        _, token, code = make_partner(web)
        plain = completions(rpc, direction, args.concurrency, args.seconds, None)
        referred = completions(rpc, direction, args.concurrency, args.seconds, code)
        overview = overview_load(web, token, args.concurrency, args.seconds)
        status, data = web.call("GET", "/api/v1/partner", token=token)
        minimum = rpc.call("orders", "get_commission")["min_withdrawal"]
        rpc.call("orders", "update_commission", {"min_withdrawal": "0.000001"}, STAFF)
        try:
            race = withdrawal_race(web, token, args.concurrency)
        finally:
            rpc.call("orders", "update_commission", {"min_withdrawal": minimum}, STAFF)
    finally:
        rpc.close()
    result = {"concurrency": args.concurrency, "seconds": args.seconds,
              "plain": plain, "referred": referred,
              "credit_overhead": round(plain["completions_per_s"] / referred["completions_per_s"], 3)
              if referred["completions_per_s"] else None,
              "referred_orders": data["stats"]["referred_orders"],
              **overview, **race}
    print(json.dumps(result))
    return 0 if race["withdrawals_accepted"] <= 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
