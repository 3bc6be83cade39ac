"""Refill the read model from the owners over RPC: `python -m services.reporting.rebuild [--wipe]`.

For a new reporting database, or one that is broken or behind (events lost to a purged queue, a bug fixed in a
projection). Orders come page by page (`orders.export_orders(after_id, limit)`, full snapshots in id order) and are
upserted with the same version check as the event handlers, so the command is safe while the service is running:
an event newer than the page wins, an older one is ignored. `--wipe` empties reporting.orders first (exports see
a partial table until the rebuild ends). Payments and payouts are not re-read: the payments service has no paged
export yet, so what was announced stays as it is.

Prints one JSON line: {"orders": N, "changed": M, "pages": P, "seconds": S}.
"""
import argparse
import json
import logging
import sys
import time

from libs import config
from libs.db import Database
from libs.rpc_client import RpcClient
from services.reporting.dependencies import ReadModel

log = logging.getLogger("services.reporting.rebuild")


def rebuild(readmodel, fetch_page, page_size=500, wipe=False, progress=None):
    """fetch_page(after_id, limit) -> list of order snapshots. Returns the counts."""
    started = time.perf_counter()
    if wipe:
        readmodel.wipe()
    after_id, total, changed, pages = 0, 0, 0, 0
    while True:
        page = fetch_page(after_id, page_size)
        if not page:
            break
        changed += readmodel.upsert_snapshots(page)
        total += len(page)
        pages += 1
        after_id = page[-1]["id"]
        if progress:
            progress(total)
        if len(page) < page_size:
            break
    return {"orders": total, "changed": changed, "pages": pages,
            "seconds": round(time.perf_counter() - started, 3)}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m services.reporting.rebuild", description=__doc__.split("\n")[0])
    parser.add_argument("--wipe", action="store_true", help="empty the read model's orders first")
    parser.add_argument("--page-size", type=int, default=500, help="orders per RPC call (at most 1000)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each page")
    parser.add_argument("--orders-service", default="orders", help="nameko name of the orders service")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--amqp-uri", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    db = Database(url=args.database_url or config.database_url(), schema="reporting", maxconn=2,
                  application_name="reporting-rebuild")
    client = RpcClient(args.amqp_uri or config.amqp_uri(), timeout=args.timeout, name="reporting-rebuild")
    try:
        def fetch(after_id, limit):
            return client.call(args.orders_service, "export_orders", after_id, limit)
        result = rebuild(ReadModel(db), fetch, page_size=max(1, min(args.page_size, 1000)), wipe=args.wipe,
                         progress=lambda n: n % 10000 == 0 and log.info("%d orders", n))
    finally:
        client.close()
        db.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
