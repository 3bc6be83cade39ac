"""The monitors' rates file under load, against a running `make run` (docs/monitors.md, docs/performance.md).

    python bench/rates.py --url http://127.0.0.1:8000 --database-url postgresql://.../exchanger

1. Seeds `--directions` (1,000) directions of its own: 32 bench currencies (codes BN00..BN31, monitor codes
   BENCHCY00..) and directions between them, straight into the orders schema in one transaction with the
   `directions_changed` event the orders service publishes for a change (its outbox), then waits until
   /rates.xml lists them all.
2. `--clients` (16) concurrent clients GET /rates.xml for `--seconds` each (full answers, then conditional GETs
   with the ETag: 304); p50/p99 of each, requests per second, bytes per answer. `--gzip`: the clients accept
   gzip, as most monitors do (bytes is then the compressed size).
3. Changes the rate of every bench direction in one transaction (as the rate engine would, with the same event)
   and measures until /rates.xml shows all of them changed: reflect_ms (the event through the outbox and broker,
   one render, the gateway's next version check).
4. recompute_ms, the rate engine recomputing as many formulas as directions after a source change (the median of 5
   rounds of bench/rate_engine.py: read every formula and value, judge each, publish every changed verdict).
5. Removes its currencies and directions (unless --keep).

Prints one JSON line, last: {"directions", "clients", "p50_ms", "p99_ms", "p99_304_ms", "rps", "bytes",
"reflect_ms", "recompute_ms", ...}. Goal (docs/performance.md): p99 <= 20 ms, recompute <= 100 ms.
"""
import argparse
import concurrent.futures
import http.client
import importlib.util
import json
import os
import statistics
import sys
import time
import urllib.parse

import psycopg2
import psycopg2.extras
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from libs import config  # noqa: E402
from libs.contracts import events  # noqa: E402
from libs.monitor_rates import parse_rates_xml  # noqa: E402
from libs.outbox import event_statements  # noqa: E402

CURRENCIES = 32
PREFIX = "BN"              # bench currency codes: BN00..BN31
MONITOR_PREFIX = "BENCHCY"
TYPES = ("auto", "semi_auto", "manual")


def connect(url):
    conn = psycopg2.connect(url, cursor_factory=psycopg2.extras.RealDictCursor)
    conn.autocommit = False
    return conn


def publish(cur, reason, direction_ids):
    statements, _ = event_statements(events.ORDERS, events.DIRECTIONS_CHANGED,
                                     {"direction_ids": direction_ids, "reason": reason}, schema="orders")
    for sql, params in statements:
        cur.execute(sql.replace("INSERT INTO outbox", "INSERT INTO orders.outbox"), params)


def seed(url, count):
    pairs = [(a, b, t) for t in TYPES for a in range(CURRENCIES) for b in range(CURRENCIES) if a != b][:count]
    if len(pairs) < count:
        raise SystemExit("at most %d bench directions" % (CURRENCIES * (CURRENCIES - 1) * len(TYPES)))
    with connect(url) as conn, conn.cursor() as cur:
        for n in range(CURRENCIES):
            cur.execute("INSERT INTO orders.currencies (code, name, precision, payment_system, account, reserve, "
                        "monitor_code) VALUES (%s, %s, 2, 'sandbox', %s, 1000000, %s) ON CONFLICT (code) DO NOTHING",
                        ("%s%02d" % (PREFIX, n), "Bench %02d" % n, "BENCH-%02d" % n, "%s%02d" % (MONITOR_PREFIX, n)))
        psycopg2.extras.execute_values(cur, (
            "INSERT INTO orders.directions (currency_in, currency_out, exchange_type, rate_in, rate_out, fee, "
            "min_amount, max_amount, payment_window_minutes) VALUES %s "
            "ON CONFLICT (currency_in, currency_out, exchange_type) DO NOTHING"),
            [("%s%02d" % (PREFIX, a), "%s%02d" % (PREFIX, b), t, 1, "%d.%02d" % (1 + a, b), "0.5", 10, 10000, 30)
             for a, b, t in pairs], page_size=500)
        cur.execute("SELECT id FROM orders.directions WHERE currency_in LIKE %s ORDER BY id", (PREFIX + "%",))
        ids = [r["id"] for r in cur.fetchall()]
        publish(cur, "bench_seed", ids)
    return ids


def remove(url):
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM orders.directions WHERE currency_in LIKE %s OR currency_out LIKE %s RETURNING id",
                    (PREFIX + "%", PREFIX + "%"))
        ids = [r["id"] for r in cur.fetchall()]
        cur.execute("DELETE FROM orders.currencies WHERE code LIKE %s", (PREFIX + "%",))
        publish(cur, "bench_removed", ids)


def bench_items(body):
    return [i for i in parse_rates_xml(body) if i["from"].startswith(MONITOR_PREFIX)]


def wait_for(url, check, timeout=60.0, interval=0.01):
    """(ms until check(items) held, items). Polls /rates.xml every `interval`."""
    started = time.perf_counter()
    session = requests.Session()
    while True:
        items = bench_items(session.get(url + "/rates.xml", timeout=10).content)
        if check(items):
            return (time.perf_counter() - started) * 1000.0, items
        if time.perf_counter() - started > timeout:
            raise SystemExit("/rates.xml did not follow within %ss (%d bench items)" % (timeout, len(items)))
        time.sleep(interval)


def load(url, clients, seconds, conditional, compressed=False):
    """Latencies (ms) of GET /rates.xml from `clients` threads for `seconds`, and the bytes of one answer. Each
    client keeps one connection (http.client: the lightest client at hand, as it shares the cores it measures)."""
    etag = requests.get(url + "/rates.xml", timeout=10,
                        headers={"Accept-Encoding": "gzip" if compressed else "identity"}).headers.get("ETag")
    target = urllib.parse.urlsplit(url)
    stop = time.perf_counter() + seconds
    sizes = []

    def client():
        conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=10)
        headers = {"If-None-Match": etag} if conditional else {}
        if compressed:
            headers["Accept-Encoding"] = "gzip"
        out = []
        try:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                conn.request("GET", "/rates.xml", headers=headers)
                response = conn.getresponse()
                body = response.read()
                out.append((time.perf_counter() - t0) * 1000.0)
                if response.status not in (200, 304):
                    raise RuntimeError("GET /rates.xml: %s" % response.status)
                if not sizes and response.status == 200:
                    sizes.append(len(body))
        finally:
            conn.close()
        return out

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = [f.result() for f in [pool.submit(client) for _ in range(clients)]]
    elapsed = time.perf_counter() - started
    latencies = sorted(x for r in results for x in r)
    return latencies, elapsed, (sizes[0] if sizes else 0)


def server_histogram(url):
    """{bucket upper bound (s): count} of the gateway's own time for /rates.xml (exchanger_http_request_seconds,
    from before_request to after_request: the handler, without queueing for the worker or the socket)."""
    out = {}
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("exchanger_http_request_seconds_bucket") and 'route="/rates.xml"' in line:
            bound = line.split('le="')[1].split('"')[0]
            out[float("inf") if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    return out


def server_p99_le(before, after):
    """The smallest histogram bound under which 99 % of the requests between two readings were handled (ms)."""
    delta = {b: after.get(b, 0) - before.get(b, 0) for b in after}
    total = delta.get(float("inf"), 0)
    for bound in sorted(delta):
        if total and delta[bound] >= 0.99 * total:
            return bound * 1000.0
    return None


def pct(values, p):
    return round(values[min(len(values) - 1, int(len(values) * p / 100.0))], 2)


def change_all(url, ids):
    """Every bench direction's rate up by 1 % in one transaction, with the event the change publishes."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("UPDATE orders.directions SET rate_out = rate_out * 1.01, rate_updated_at = now(), "
                    "updated_at = now() WHERE id = ANY(%s)", (ids,))
        publish(cur, "bench_change", ids)


def recompute(args):
    """The rate engine's recompute of 1,000 formulas, when services/rates is installed (issue 13, items 1-3)."""
    if importlib.util.find_spec("services.rates") is None:
        return None, "services/rates is not installed in this checkout: the rate engine is not measured"
    from bench import rate_engine   # in process, against the rates schema of the same database
    figures = rate_engine.measure(args.directions, 5, args.database_url)
    return figures["recompute_ms"], None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:%s" % config.env("GATEWAY_PORT", "8000"))
    parser.add_argument("--database-url", default=config.database_url())
    parser.add_argument("--directions", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--gzip", action="store_true", help="the clients accept gzip (as most monitors do)")
    parser.add_argument("--keep", action="store_true", help="leave the bench directions in place")
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")

    ids = seed(args.database_url, args.directions)
    try:
        seeded_ms, items = wait_for(url, lambda items: len(items) >= len(ids))
        histogram_before = server_histogram(url)
        full, full_s, size = load(url, args.clients, args.seconds, conditional=False, compressed=args.gzip)
        handler_p99 = server_p99_le(histogram_before, server_histogram(url))
        cond, _, _ = load(url, args.clients, max(2.0, args.seconds / 3), conditional=True, compressed=args.gzip)
        before = {(i["from"], i["to"], tuple(i["param"])): i["out"] for i in items}
        change_all(args.database_url, ids)
        reflect_ms, _ = wait_for(url, lambda now: len(now) >= len(ids) and all(
            before.get((i["from"], i["to"], tuple(i["param"]))) != i["out"] for i in now))
        recompute_ms, note = recompute(args)
    finally:
        if not args.keep:
            remove(args.database_url)
    result = {
        "directions": len(ids), "clients": args.clients, "gzip": args.gzip, "requests": len(full),
        "p50_ms": pct(full, 50), "p99_ms": pct(full, 99), "max_ms": round(full[-1], 2),
        "mean_ms": round(statistics.fmean(full), 2), "rps": round(len(full) / full_s, 1), "bytes": size,
        "p50_304_ms": pct(cond, 50), "p99_304_ms": pct(cond, 99), "requests_304": len(cond),
        "listed_after_seed_ms": round(seeded_ms, 1), "reflect_ms": round(reflect_ms, 1),
        "recompute_ms": recompute_ms,
        # the gateway's own handling time (its metrics histogram: a bucket bound, not an exact figure), and the
        # machine's load while measuring: the client shares the cores with the system it measures
        "handler_p99_ms_le": handler_p99, "loadavg_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
    }
    if note:
        result["recompute_note"] = note
    print(json.dumps(result))


if __name__ == "__main__":
    main()
