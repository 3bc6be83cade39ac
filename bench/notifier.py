"""How fast the notifier drains a backlog of letters into a local SMTP server.

    python bench/notifier.py [--letters 5000] [--concurrency 8] [--smtp-url smtp://127.0.0.1:8025]

Self-contained, so it never mails the customers of a running system: it makes a scratch schema
`notifier_bench_<pid>` with the notifier's own migrations in DATABASE_URL's database, queues `letters` rendered
letters (L1, multipart text + HTML, ~5 KB each) as `pending` rows, and runs the notifier's real sender (the same
claim -> `sending` commit -> SMTP -> `sent` commit path, the same pooled SMTP connections, eventlet green threads
like `nameko run`) until every row is `sent`. By default it starts its own aiosmtpd dev server
(services/notifier/devsmtp.py, storing every letter in a Maildir, as `make run` does) and checks that it received
every letter exactly once; `--smtp-url` aims at another server instead. `--url` is accepted like the other
benchmarks' but unused. Prints one JSON line last: {"letters_per_s", "backlog_drain_s", ...}.
"""
import eventlet

eventlet.monkey_patch()  # noqa: E402  the sender is green, as inside `nameko run`

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import psycopg2  # noqa: E402
import psycopg2.extras  # noqa: E402
from yoyo import get_backend, read_migrations  # noqa: E402

from libs import config, migrate  # noqa: E402
from libs.db import Database  # noqa: E402
from services.notifier import domain  # noqa: E402
from services.notifier.render import Renderer  # noqa: E402
from libs.contracts.orders import OrderSnapshotSchema  # noqa: E402
from services.notifier.schemas import plain_order  # noqa: E402
from services.notifier.sender import Sender  # noqa: E402
from services.notifier.store import NotifierStore  # noqa: E402
from services.notifier.transports import SmtpMailer, TwilioSms  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sink(maildir):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "services.notifier.devsmtp", "--port", str(port),
                             "--maildir", maildir, "--quiet"], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, "smtp://127.0.0.1:%d" % port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the SMTP sink did not start")


def make_schema(url, schema):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE SCHEMA %s" % schema)
    conn.close()
    backend = get_backend(migrate._with_schema(url, schema))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(read_migrations(os.path.join(ROOT, "services/notifier/migrations"))))


def drop_schema(url, schema):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS %s CASCADE" % schema)
    conn.close()


def queue_letters(db, renderer, n):
    """n pending L1 letters, rendered from the real templates (like the consumer does)."""
    rows = []
    for i in range(n):
        order = plain_order(OrderSnapshotSchema().load({
            "id": i + 1, "token": uuid.uuid4().hex, "status": "new", "exchange_type": "manual",
            "currency_in": "EUR", "currency_out": "USDT", "amount_in": "100", "amount_out": "106.465",
            "rate_in": "1", "rate_out": "1.07", "email": "bench-%d@example.com" % i, "recipient": "USDT-%d" % i,
            "language": "en" if i % 2 else "ru",
            "pay_to": {"system": "sandbox", "account": "EXCH-EUR", "amount": "100", "currency": "EUR",
                       "reference": "EXBENCH%05d" % i}}))
        subject, text, html = renderer.render_order("L1", "email", order["language"], order)
        rows.append((domain.order_dedupe_key(order["id"], "L1", "email"), order["id"], "L1", "email", "customer",
                     order["email"], order["language"], subject, text, html, 10))
    with db.transaction() as cur:
        psycopg2.extras.execute_values(
            cur, "INSERT INTO notifications (dedupe_key, order_id, kind, channel, audience, recipient, language, "
                 "subject, body_text, body_html, max_attempts) VALUES %s", rows, page_size=1000)
    return sum(len(r[8]) + len(r[9]) for r in rows) / n


def count_mail(maildir):
    return len(os.listdir(os.path.join(maildir, "new"))) if os.path.isdir(os.path.join(maildir, "new")) else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--letters", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8, help="parallel SMTP connections (NOTIFIER_CONCURRENCY)")
    parser.add_argument("--smtp-url", default=None, help="an SMTP server to use instead of a fresh aiosmtpd sink")
    parser.add_argument("--database-url", default=config.database_url())
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="unused (self-contained)")
    args = parser.parse_args(argv)

    schema = "notifier_bench_%d" % os.getpid()
    tmp = tempfile.mkdtemp(prefix="notifier-bench-")
    maildir = os.path.join(tmp, "maildir")
    sink, smtp_url = (None, args.smtp_url) if args.smtp_url else start_sink(maildir)
    db = None
    try:
        make_schema(args.database_url, schema)
        db = Database(url=args.database_url, schema=schema, maxconn=args.concurrency + 4,
                      application_name="notifier-bench")
        renderer = Renderer("http://127.0.0.1:8000")
        store = NotifierStore(db, renderer)
        mailer = SmtpMailer(smtp_url, "Exchanger <noreply@exchanger.local>", timeout=30, pool_size=args.concurrency)
        sender = Sender(store, mailer, TwilioSms(None, None, None), concurrency=args.concurrency)
        letter_bytes = queue_letters(db, renderer, args.letters)

        started = time.perf_counter()
        sender.drain()
        drained = time.perf_counter() - started
        counts = {r["status"]: r["n"] for r in db.fetchall(
            "SELECT status, count(*) AS n FROM notifications GROUP BY status")}
        first_last = db.fetchone("SELECT extract(epoch FROM max(sent_at) - min(sent_at)) AS span FROM notifications")
        received = None
        if sink is not None:
            deadline = time.monotonic() + 10
            while count_mail(maildir) < args.letters and time.monotonic() < deadline:
                time.sleep(0.05)
            received = count_mail(maildir)
        mailer.close()
        result = {
            "letters_per_s": round(args.letters / drained, 1),
            "backlog_drain_s": round(drained, 3),
            "letters": args.letters,
            "sent": counts.get("sent", 0),
            "failed": counts.get("failed", 0),
            "received_by_smtp": received,
            "concurrency": args.concurrency,
            "avg_letter_bytes": int(letter_bytes),
            "send_span_s": round(float(first_last["span"] or 0), 3),
            "smtp": "aiosmtpd dev server, Maildir" if sink is not None else smtp_url,
        }
    finally:
        if db is not None:
            db.close()
        drop_schema(args.database_url, schema)
        if sink is not None:
            sink.terminate()
            sink.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))
    return 0 if result["sent"] == args.letters and received in (None, args.letters) else 1


if __name__ == "__main__":
    raise SystemExit(main())
