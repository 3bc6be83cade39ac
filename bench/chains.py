"""The chain rails against a system started by `make run` (docs/chains.md): detection latency of deposits at their
required depth, payouts per second from one hot wallet, and double payouts counted from the chain itself.

    python bench/chains.py --url http://127.0.0.1:8000 --sandbox-url http://127.0.0.1:8090

The Litecoin node is reached as `make run` starts it (LITECOIN_RPC_PORT, LITECOIN_RPC_USER, and the password in
LITECOIN_RPC_PASSWORD or var/chains-secrets). The bench mines a block every `--mine-seconds` itself (on top of the
`chains` process's own interval), and notes the local time each height appears (polled every 20 ms).

Phase 1 (detection): `--deposits` LTC->EUR auto orders, each paid from the demo wallet to its own address.
Detection of one = the time its order became `paid` (the order's history) minus the time the block that gave its
deposit the required depth appeared on the node. Goal: at most one poll interval (PAYMENTS_POLL_SECONDS).
Phase 2 (payouts): `--payouts` EUR->LTC auto orders, all paid at once at the sandbox, each to a fresh address of the
demo wallet. payouts_per_s = payouts / (seconds from the first payment to the last payout broadcast, as seen in
the node's mempool or chain).
double_payouts: over every address of phase 2, receiving outputs beyond one, counted by the demo wallet from the
chain and mempool (listtransactions), after the payouts completed.

Prints one JSON line, last: {"detect_p50_ms", "detect_p99_ms", "payouts_per_s", "double_payouts", ...}.
"""
import argparse
import datetime
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from libs.jsonrpc import JsonRpc  # noqa: E402


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else None


class Heights(threading.Thread):
    """Notes when each block height first appears on the node; mines one every `mine_seconds` if asked."""

    def __init__(self, node, miner_address, mine_seconds):
        super().__init__(daemon=True)
        self.node, self.miner_address, self.mine_seconds = node, miner_address, mine_seconds
        self.seen = {}
        self.stop = threading.Event()

    def run(self):
        next_block = time.time() + self.mine_seconds
        while not self.stop.is_set():
            height = self.node.call("getblockcount")
            now = time.time()
            for h in range(max(self.seen or [height - 1]) + 1, height + 1):
                self.seen.setdefault(h, now)
            if self.mine_seconds and now >= next_block:
                next_block += self.mine_seconds
                self.node.call("generatetoaddress", 1, self.miner_address)
            time.sleep(0.02)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:%s" % os.environ.get("GATEWAY_PORT", "8000"))
    parser.add_argument("--sandbox-url", default="http://127.0.0.1:%s" % os.environ.get("SANDBOX_PORT", "8090"))
    parser.add_argument("--deposits", type=int, default=20)
    parser.add_argument("--payouts", type=int, default=30)
    parser.add_argument("--mine-seconds", type=float, default=2.0)
    args = parser.parse_args()

    password = os.environ.get("LITECOIN_RPC_PASSWORD")
    if not password:
        with open(os.path.join(ROOT, "var", "chains-secrets")) as fh:
            password = fh.read().strip()
    node_url = "http://127.0.0.1:%s" % os.environ.get("LITECOIN_RPC_PORT", "19443")
    auth = (os.environ.get("LITECOIN_RPC_USER", "exchanger"), password)
    node = JsonRpc(node_url, auth, timeout=30)
    demo = node.with_path("/wallet/demo")
    miner = node.with_path("/wallet/miner").call("getnewaddress", "", "bech32")
    http = requests.Session()

    def api(method, path, **kw):
        return http.request(method, args.url.rstrip("/") + path, timeout=30, **kw)

    directions = api("GET", "/api/v1/directions").json()
    ltc_eur = next(d for d in directions if (d["currency_in"], d["currency_out"], d["exchange_type"]) ==
                   ("LTC", "EUR", "auto"))
    eur_ltc = next(d for d in directions if (d["currency_in"], d["currency_out"], d["exchange_type"]) ==
                   ("EUR", "LTC", "auto"))
    heights = Heights(node, miner, args.mine_seconds)
    heights.start()

    # -- phase 1 -----------------------------------------------------------------------------------------------
    def sandbox_account(currency, balance="0"):
        r = requests.post(args.sandbox_url.rstrip("/") + "/api/accounts", timeout=30,
                          json={"currency": currency, "balance": balance, "owner": "bench-chains"})
        r.raise_for_status()
        return r.json()["account"]

    eur_recipient = sandbox_account("EUR")

    def create(direction, amount, recipient, i):
        r = api("POST", "/api/v1/orders", json={"direction_id": direction["id"], "amount_in": amount,
                                                "recipient": recipient, "email": "bench-chain-%d@example.com" % i})
        if r.status_code != 201:
            raise SystemExit("cannot create an order: %s %s" % (r.status_code, r.text))
        return r.json()

    deposits = [create(ltc_eur, "0.02", eur_recipient, i) for i in range(args.deposits)]
    txids = {}
    for order in deposits:
        address = api("GET", "/api/v1/orders/%s/deposit" % order["token"]).json()["address"]
        txid = demo.call("sendtoaddress", address, order["pay_to"]["amount"])
        node.call("sendrawtransaction", demo.call("gettransaction", txid)["hex"])
        txids[order["id"]] = txid
    required = api("GET", "/api/v1/orders/%s/deposit" % deposits[0]["token"]).json()["required_confirmations"]
    detect_ms, pending = [], {o["id"]: o for o in deposits}
    deadline = time.time() + 300
    while pending and time.time() < deadline:
        for order_id, order in list(pending.items()):
            current = api("GET", "/api/v1/orders/%s" % order["token"]).json()
            paid = [h for h in current.get("history", []) if h["to_status"] == "paid"]
            if not paid:
                continue
            block_height = demo.call("gettransaction", txids[order_id]).get("blockheight")
            depth_height = block_height + required - 1
            if depth_height not in heights.seen:
                continue
            paid_at = datetime.datetime.fromisoformat(paid[0]["at"]).timestamp()
            detect_ms.append((paid_at - heights.seen[depth_height]) * 1000)
            del pending[order_id]
        time.sleep(0.2)

    # -- phase 2 -----------------------------------------------------------------------------------------------
    payer = sandbox_account("EUR", balance=str(10 * args.payouts + 100))
    recipients = [demo.call("getnewaddress", "bench-payout", "bech32") for _ in range(args.payouts)]
    payout_orders = [create(eur_ltc, "2", recipients[i], 1000 + i) for i in range(args.payouts)]
    started = time.time()

    def pay(order):
        pay_to = order["pay_to"]
        r = requests.post(args.sandbox_url.rstrip("/") + "/api/transfers", timeout=30, json={
            "from_account": payer, "to_account": pay_to["account"], "amount": pay_to["amount"],
            "currency": pay_to["currency"], "reference": pay_to["reference"]})
        r.raise_for_status()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(pay, payout_orders))
    last_broadcast, waiting = started, set(recipients)
    deadline = time.time() + 300
    while waiting and time.time() < deadline:
        for address in list(waiting):
            if demo.call("getreceivedbyaddress", address, 0) > 0:
                waiting.discard(address)
                last_broadcast = time.time()
        time.sleep(0.1)
    payouts_per_s = (args.payouts - len(waiting)) / max(0.001, last_broadcast - started)
    completed = {o["id"]: False for o in payout_orders}
    deadline = time.time() + 300
    while not all(completed.values()) and time.time() < deadline:
        for order in payout_orders:
            if not completed[order["id"]]:
                completed[order["id"]] = api("GET", "/api/v1/orders/%s" % order["token"]).json()[
                    "status"] == "completed"
        time.sleep(0.5)
    heights.stop.set()
    received = {}
    for t in demo.call("listtransactions", "bench-payout", 100000):
        if t["category"] == "receive" and t["address"] in set(recipients):
            received[t["address"]] = received.get(t["address"], 0) + 1
    double = sum(max(0, n - 1) for n in received.values())
    result = {
        "deposits": args.deposits, "deposits_detected": len(detect_ms), "required_confirmations": required,
        "poll_interval_s": float(os.environ.get("PAYMENTS_POLL_SECONDS", "2")),
        "detect_p50_ms": round(percentile(detect_ms, 0.5) or 0), "detect_p99_ms": round(percentile(detect_ms, 0.99) or 0),
        "payouts": args.payouts, "payouts_broadcast": args.payouts - len(waiting),
        "payouts_completed": sum(completed.values()), "payouts_per_s": round(payouts_per_s, 2),
        "double_payouts": double,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
