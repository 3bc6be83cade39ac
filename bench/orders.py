"""Order-creation throughput through the running gateway, against the framework's own ceiling.

    python bench/orders.py --url http://127.0.0.1:8000 --concurrency 16 --seconds 20

Phase 1 drives POST /api/v1/orders with `concurrency` keep-alive connections for `seconds`.
Phase 2, in the same run and at the same concurrency, drives GET /api/v1/echo: the same HTTP server and the same
RPC pool of the gateway, a bare echo RPC to the orders service and back, no business logic. That is the
framework's own ceiling; `ratio` = orders_per_s / echo_rpc_per_s.
Phase 3 drives the echo RPC straight from this process through the gateway's RPC client class
(libs/rpc_client.py), without HTTP: `bare_rpc_per_s`, what the messaging alone does on this machine.
`cpu_ms_per_order` is the CPU time of every process of the system (services, gateway, sandbox, SMTP server,
PostgreSQL backends and RabbitMQ, read from /proc by bench/cpu.py) from the start of phase 1 until every event it
caused has been consumed (the subscription queues are empty again), divided by the orders created; the load
generator is left out. Counting work instead of timing it keeps the figure comparable on a shared, noisy machine.
Prints one JSON line: {"orders_per_s", "cpu_ms_per_order", "p50_ms", "p99_ms", "errors", "echo_rpc_per_s", ...}.
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.cpu import SystemCpu, delta  # noqa: E402
from libs import topology  # noqa: E402
from libs.amqp_publish import connect  # noqa: E402
from libs.rpc_client import RpcClient  # noqa: E402


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def pick_direction(url):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)
    conn.request("GET", "/api/v1/directions")
    directions = json.loads(conn.getresponse().read())
    # an auto direction: the order stays "new" (nobody pays it), so the load triggers no payout and no letter,
    # but every consumer of order_created (payments, reporting, notifier) still does its share
    auto = [d for d in directions if d["exchange_type"] == "auto"]
    return auto[0] if auto else directions[0]


def drive_http(url, concurrency, seconds, direction=None):
    """POST /api/v1/orders (direction given) or GET /api/v1/echo, closed loop, keep-alive connections."""
    parts = urlsplit(url)
    latencies, errors, lock = [], [0], threading.Lock()
    deadline = time.monotonic() + seconds
    body_base = direction and {"direction_id": direction["id"], "amount_in": direction["min_amount"],
                               "recipient": "BENCH-WALLET"}

    def worker(n):
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
        mine, bad = [], 0
        i = 0
        while time.monotonic() < deadline:
            i += 1
            started = time.perf_counter()
            try:
                if body_base:
                    body = json.dumps(dict(body_base, email="bench-%d-%d@example.com" % (n, i)))
                    conn.request("POST", "/api/v1/orders", body, {"Content-Type": "application/json"})
                else:
                    conn.request("GET", "/api/v1/echo")
                response = conn.getresponse()
                response.read()
                if response.status != (201 if body_base else 200):
                    bad += 1
                else:
                    mine.append(time.perf_counter() - started)
            except (OSError, http.client.HTTPException):
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    elapsed = time.monotonic() - started
    return latencies, errors[0], elapsed


def drive_echo(amqp_uri, concurrency, seconds):
    client = RpcClient(amqp_uri, timeout=10, name="bench")
    client.call("orders", "echo", "warm-up")
    counts, lock = [0], threading.Lock()
    deadline = time.monotonic() + seconds

    def worker():
        done = 0
        while time.monotonic() < deadline:
            client.call("orders", "echo", uuid.uuid4().hex)
            done += 1
        with lock:
            counts[0] += done

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    client.close()
    return counts[0] / (time.monotonic() - started)


def wait_until_consumed(amqp_uri, timeout=60.0):
    """Block until no subscription queue holds a ready or unacknowledged message (the events of the timed phase
    have all been handled); returns the seconds waited."""
    started = time.monotonic()
    queues = [topology.queue_name(s.source, s.event_type, s.service, s.method) for s in topology.all_subscriptions()]
    conn = connect(amqp_uri)
    try:
        channel = conn.channel()
        quiet = 0
        while time.monotonic() - started < timeout:
            busy = 0
            for queue in queues:
                try:
                    _, ready, _ = channel.queue_declare(queue, passive=True)
                except Exception:  # noqa: BLE001 - a queue nobody declared holds nothing
                    channel = conn.channel()
                    continue
                busy += ready
            # passive declare counts ready messages only: two quiet looks 0.2 s apart cover those in flight
            quiet = quiet + 1 if busy == 0 else 0
            if quiet >= 2:
                break
            time.sleep(0.2)
    finally:
        conn.close()
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--amqp-uri", default=os.environ.get("AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672/"))
    args = parser.parse_args()

    direction = pick_direction(args.url)
    drive_http(args.url, args.concurrency, min(3, args.seconds), direction)   # warm-up
    wait_until_consumed(args.amqp_uri)
    system = SystemCpu(database=urlsplit(os.environ.get("DATABASE_URL", "postgresql:///exchanger")).path.lstrip("/"))
    cpu_before = system.snapshot()
    latencies, errors, elapsed = drive_http(args.url, args.concurrency, args.seconds, direction)
    drained_s = wait_until_consumed(args.amqp_uri)
    cpu_used = delta(cpu_before, system.snapshot())
    echo_latencies, echo_errors, echo_elapsed = drive_http(args.url, args.concurrency, args.seconds)
    echo_per_s = len(echo_latencies) / echo_elapsed
    bare_per_s = drive_echo(args.amqp_uri, args.concurrency, min(10, args.seconds))
    orders_per_s = len(latencies) / elapsed
    result = {
        "orders_per_s": round(orders_per_s, 1),
        "cpu_ms_per_order": round(sum(cpu_used.values()) * 1000 / len(latencies), 2) if latencies else None,
        "cpu_ms_per_order_by_process": {k: round(v * 1000 / len(latencies), 2)
                                        for k, v in sorted(cpu_used.items())} if latencies else None,
        "drain_s": round(drained_s, 2),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
        "errors": errors,
        "echo_rpc_per_s": round(echo_per_s, 1),
        "ratio": round(orders_per_s / echo_per_s, 3) if echo_per_s else None,
        "echo_p99_ms": round(percentile(echo_latencies, 0.99) * 1000, 1) if echo_latencies else None,
        "echo_errors": echo_errors,
        "bare_rpc_per_s": round(bare_per_s, 1),
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "mean_ms": round(statistics.mean(latencies) * 1000, 1) if latencies else None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
