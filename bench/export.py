"""CSV export of a million orders through the gateway, against PostgreSQL's own `psql \\copy` of the same query.

    python bench/export.py                      # against `make run` (gateway http://127.0.0.1:8000)
    python bench/export.py --spawn              # starts its own reporting service and gateway (1 worker)
    python bench/export.py --rows 1000000 --small 100000 --keep

1. Seeds `--rows` orders straight into the read model (reporting.orders, one INSERT ... generate_series) in an id
   block and a creation window of their own (2001-2002), so real orders are untouched; removes them at the end
   unless --keep (a later run with --keep reuses them).
2. Signs in as a bench analyst (created or reset with a random password through gateway.security.staff.StaffStore).
3. Exports the window through GET /api/v1/admin/reports/orders.csv, reading and discarding the bytes, while
   sampling every 20 ms the RSS of the serving processes: the gateway worker (the largest gunicorn worker),
   the reporting service and its COPY child. peak_rss_mb is the peak of their sum; *_by_process each one's.
4. Runs the same SELECT through `psql \\copy ... TO '/dev/null'` (psql_copy_s) and a smaller export (`--small`
   rows) whose peak RSS shows the memory is flat in the number of rows.

Needs DATABASE_URL (the database of the running system) and psql. Prints one JSON line, last:
{"rows", "export_s", "peak_rss_mb", "psql_copy_s", "ratio", ...}.
"""
import argparse
import datetime
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import psycopg2
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from libs import config  # noqa: E402
from libs.contracts import reporting as report_contract  # noqa: E402
from services.reporting import store  # noqa: E402

ID_BASE = 9 * 10**15          # far above any real order id
WINDOW_START = "2001-01-01"   # bench orders are created one a minute from here
WINDOW_END = "2003-01-01"
BENCH_USER = "bench-export"

SEED_SQL = """
INSERT INTO reporting.orders (id, version, status, previous_status, last_action, exchange_type, direction_id,
    currency_in, currency_out, amount_in, amount_out, rate_in, rate_out, fee, fee_amount, sms_fee, amount_received,
    payment_flag, email, recipient, partner_code, language, reference, created_at, updated_at, expires_at,
    completed_at, event_at)
SELECT %(base)s + g, 3,
       (ARRAY['new','completed','expired','canceled','paid','payout','processing','payment_claimed'])[1 + g %% 8],
       'new', 'finalize', (ARRAY['auto','semi_auto','manual'])[1 + g %% 3], 1 + g %% 5,
       (ARRAY['USDT','USD','EUR','RUB','USD'])[1 + g %% 5], (ARRAY['EUR','RUB','USDT','USD','EUR'])[1 + g %% 5],
       round((10 + g %% 4990 + (g %% 97) / 100.0)::numeric, 2), round(((10 + g %% 4990) * 0.9154)::numeric, 2),
       1, 0.92, 0.5, round(((10 + g %% 4990) * 0.0046)::numeric, 6), 0,
       CASE WHEN g %% 8 = 1 THEN round((10 + g %% 4990 + (g %% 97) / 100.0)::numeric, 2) END,
       CASE WHEN g %% 50 = 0 THEN 'over' END,
       'customer' || g || '@example.com',
       CASE WHEN g %% 1000 = 0 THEN '=HYPERLINK("http://x.example")' ELSE 'ACC-' || lpad(g::text, 10, '0') END,
       CASE WHEN g %% 10 = 0 THEN 'partner' || g %% 7 END, 'en', 'EXB' || g,
       timestamptz '2001-01-01' + g * interval '1 minute',
       timestamptz '2001-01-01' + g * interval '1 minute' + interval '10 minutes',
       timestamptz '2001-01-01' + g * interval '1 minute' + interval '30 minutes',
       CASE WHEN g %% 8 = 1 THEN timestamptz '2001-01-01' + g * interval '1 minute' + interval '20 minutes' END,
       now()
  FROM generate_series(1, %(rows)s) g
"""


# -- processes and their memory --------------------------------------------------------------------------------------
def rss_mb(pid):
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def listening_pid(port):
    """The process listening on 127.0.0.1/0.0.0.0:port (Linux /proc; same user)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                next(fh)
                for line in fh:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except OSError:
            pass
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir("/proc/%s/fd" % entry):
                link = os.readlink("/proc/%s/fd/%s" % (entry, fd))
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    found.append(int(entry))
                    break
        except OSError:
            continue
    return min(found) if found else None  # the gunicorn master is the oldest (lowest pid, usually)


class Sampler:
    """Samples the serving processes every `interval` s: the largest gateway worker, reporting, its children."""

    def __init__(self, gateway_master, reporting_pid, interval=0.02):
        self.gateway_master = gateway_master
        self.reporting_pid = reporting_pid
        self.interval = interval
        self.peaks = {"gateway_worker": 0.0, "reporting": 0.0, "export_child": 0.0, "sum": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self):
        workers = children(self.gateway_master) if self.gateway_master else []
        gateway = max([rss_mb(p) for p in workers] or [rss_mb(self.gateway_master or 0)])
        reporting = rss_mb(self.reporting_pid)
        child = sum(rss_mb(p) for p in children(self.reporting_pid))
        return {"gateway_worker": gateway, "reporting": reporting, "export_child": child,
                "sum": gateway + reporting + child}

    def _run(self):
        while not self._stop.is_set():
            for key, value in self.sample().items():
                self.peaks[key] = max(self.peaks[key], value)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# -- steps -------------------------------------------------------------------------------------------------------------
def seed(database_url, rows):
    conn = psycopg2.connect(database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM reporting.orders WHERE id > %s AND id <= %s",
                        (ID_BASE, ID_BASE + rows))
            if cur.fetchone()[0] == rows:
                return 0.0  # kept by an earlier run with --keep
            started = time.perf_counter()
            cur.execute("DELETE FROM reporting.orders WHERE id > %s", (ID_BASE,))
            cur.execute(SEED_SQL, {"base": ID_BASE, "rows": rows})
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ANALYZE reporting.orders")
        return time.perf_counter() - started
    finally:
        conn.close()


def unseed(database_url):
    conn = psycopg2.connect(database_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM reporting.orders WHERE id > %s", (ID_BASE,))
    finally:
        conn.close()


def bench_token(url, database_url):
    from gateway.security.staff import StaffStore
    from libs.db import Database
    password = "bench-" + secrets.token_urlsafe(18)
    store = StaffStore(Database(url=database_url, schema="gateway", maxconn=1, application_name="bench-export"))
    row = store.db.fetchone("SELECT id FROM staff WHERE username = %s", (BENCH_USER,))
    if row is None:
        store.create(BENCH_USER, password, "analyst")
    else:
        with store.db.transaction() as cur:
            store.update(row["id"], cur, role="analyst", active=True, password=password)
    store.db.close()
    r = requests.post(url + "/api/v1/auth/token", json={"username": BENCH_USER, "password": password}, timeout=30)
    r.raise_for_status()
    return r.json()["token"]


def gateway_export(url, token, params, sampler):
    started = time.perf_counter()
    total, lines = 0, 0
    with sampler:
        with requests.get(url + "/api/v1/admin/reports/orders.csv", params=params, stream=True, timeout=(5, 120),
                          headers={"Authorization": "Bearer " + token}) as r:
            r.raise_for_status()
            for chunk in r.raw.stream(1 << 20, decode_content=False):
                total += len(chunk)
                lines += chunk.count(b"\n")
    return time.perf_counter() - started, lines - 1, total


def psql_copy(database_url, params):
    loaded = report_contract.ExportQuerySchema().load(params)
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            sql, args = store.select_sql(loaded)
            select = cur.mogrify(sql, args).decode()
    finally:
        conn.close()
    command = "\\copy (%s) TO '/dev/null' WITH (FORMAT csv, HEADER true)" % select
    started = time.perf_counter()
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", database_url, "-c", command], check=True)
    return time.perf_counter() - started


# -- --spawn: our own reporting service and gateway ------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(database_url):
    gateway_port, reporting_port = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=ROOT, DATABASE_URL=database_url, GATEWAY_PORT=str(gateway_port),
               GATEWAY_WORKERS="1", REPORTING_HTTP_ADDRESS="127.0.0.1:%d" % reporting_port,
               REPORTING_URL="http://127.0.0.1:%d" % reporting_port, REPORTING_METRICS_PORT=str(free_port()),
               GATEWAY_METRICS_DIR=os.path.join(ROOT, "var", "bench-export-prometheus"),
               GATEWAY_READY_SERVICES="reporting")
    bindir = os.path.dirname(sys.executable)
    log = open(os.path.join(ROOT, "var", "bench-export.log"), "w")
    procs = [
        subprocess.Popen([os.path.join(bindir, "nameko"), "run", "services.reporting.service", "--config",
                          "services/reporting/config.yml"], cwd=ROOT, env=env, stdout=log, stderr=log,
                         start_new_session=True),
        subprocess.Popen([os.path.join(bindir, "gunicorn"), "-c", "deploy/gunicorn.conf.py", "gateway.wsgi:app"],
                         cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True),
    ]
    url = "http://127.0.0.1:%d" % gateway_port
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        if any(p.poll() is not None for p in procs):
            raise SystemExit("a spawned process exited; see var/bench-export.log")
        time.sleep(0.3)
    else:
        raise SystemExit("spawned system not ready; see var/bench-export.log")
    return url, reporting_port, procs, log


def stop(procs, log):
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
    log.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:%s" % config.env("GATEWAY_PORT", "8000"))
    parser.add_argument("--reporting-port", type=int, default=None,
                        help="the reporting service's HTTP port, to find its process (default: from "
                             "REPORTING_HTTP_ADDRESS or 8104)")
    parser.add_argument("--rows", type=int, default=1000000)
    parser.add_argument("--small", type=int, default=100000, help="rows of the second, smaller export")
    parser.add_argument("--spawn", action="store_true", help="start our own reporting service and gateway")
    parser.add_argument("--keep", action="store_true", help="leave the seeded rows for the next run")
    args = parser.parse_args(argv)
    if not shutil.which("psql"):
        raise SystemExit("psql is needed for the baseline (apt-get install postgresql-client)")
    database_url = config.database_url()
    os.makedirs(os.path.join(ROOT, "var"), exist_ok=True)
    procs = log = None
    url = args.url.rstrip("/")
    reporting_port = args.reporting_port or int(config.env("REPORTING_HTTP_ADDRESS", "127.0.0.1:8104")
                                                .rsplit(":", 1)[1])
    try:
        seed_s = seed(database_url, args.rows)
        if args.spawn:
            url, reporting_port, procs, log = spawn(database_url)
        gateway_pid = listening_pid(urllib.parse.urlsplit(url).port or 80)
        reporting_pid = listening_pid(reporting_port)
        if not gateway_pid or not reporting_pid:
            raise SystemExit("cannot find the gateway (%s) or reporting (:%d) process on this machine"
                             % (url, reporting_port))
        token = bench_token(url, database_url)
        full = {"created_from": WINDOW_START, "created_to": WINDOW_END}
        start = datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc)
        small = {"created_from": WINDOW_START,
                 "created_to": (start + datetime.timedelta(minutes=args.small + 1)).isoformat()}
        # Warm-up: the first export of a process pays for imports and pool connections.
        gateway_export(url, token, dict(small, created_to="2001-01-01T01:00:00"), Sampler(None, reporting_pid))
        baseline = Sampler(gateway_pid, reporting_pid).sample()
        small_sampler = Sampler(gateway_pid, reporting_pid)
        small_s, small_rows, _ = gateway_export(url, token, small, small_sampler)
        sampler = Sampler(gateway_pid, reporting_pid)
        export_s, rows, size = gateway_export(url, token, full, sampler)
        psql_s = psql_copy(database_url, full)
    finally:
        if procs:
            stop(procs, log)
        if not args.keep:
            unseed(database_url)
    result = {
        "rows": rows, "export_s": round(export_s, 3), "peak_rss_mb": round(sampler.peaks["sum"], 1),
        "psql_copy_s": round(psql_s, 3), "ratio": round(export_s / psql_s, 3),
        "mb": round(size / 1e6, 1), "rows_per_s": int(rows / export_s), "seed_s": round(seed_s, 1),
        "peak_rss_by_process_mb": {k: round(v, 1) for k, v in sampler.peaks.items() if k != "sum"},
        "baseline_rss_mb": {k: round(v, 1) for k, v in baseline.items()},
        "small": {"rows": small_rows, "export_s": round(small_s, 3), "peak_rss_mb": round(small_sampler.peaks["sum"],
                                                                                           1)},
        "spawned": bool(args.spawn),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
