"""The chain rails against a system started by `make run` (docs/chains.md): detection latency of deposits at their
required depth, payouts per second from one hot wallet, and double payouts counted from the chain itself.

    python bench/chains.py --url http://127.0.0.1:8000 --sandbox-url http://127.0.0.1:8090 [--rails litecoin,evm]

The EVM rail is measured the same way with USDTERC20 (anvil on EVM_RPC_PORT, the demo key from EVM_KEYS_FILE; the
token's Transfer logs count the transfers); its payouts come from one hot key, so payouts_per_s is also the rate of
nonces taken without an error. The top-level figures are the worst over the rails measured (p99 the largest,
payouts_per_s the smallest, double_payouts the sum); each rail's own are under its name.

The Litecoin node is reached as `make run` starts it (LITECOIN_RPC_PORT, LITECOIN_RPC_USER, and the password in
LITECOIN_RPC_PASSWORD or var/chains-secrets). The bench mines a block every `--mine-seconds` itself (on top of the
`chains` process's own interval), and notes the local time each height appears (polled every 20 ms).

Phase 1 (detection): `--deposits` LTC->EUR auto orders, each paid from the demo wallet to its own address at a
random moment within `--spread` seconds.
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
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from libs.jsonrpc import JsonRpc  # noqa: E402


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else None


class Heights(threading.Thread):
    """Notes when each block height first appears on the node; mines one every `mine_seconds` if asked."""

    def __init__(self, chain, mine_seconds):
        super().__init__(daemon=True)
        self.chain, self.mine_seconds = chain, mine_seconds
        self.seen = {}
        self.stop = threading.Event()

    def run(self):
        next_block = time.time() + self.mine_seconds
        while not self.stop.is_set():
            height = self.chain.height()
            now = time.time()
            for h in range(max(self.seen or [height - 1]) + 1, height + 1):
                self.seen.setdefault(h, now)
            if self.mine_seconds and now >= next_block:
                next_block += self.mine_seconds
                self.chain.mine()
            time.sleep(0.02)


class LitecoinChain:
    currency, deposit_amount = "LTC", "0.02"

    def __init__(self):
        password = os.environ.get("LITECOIN_RPC_PASSWORD")
        if not password:
            with open(os.path.join(ROOT, "var", "chains-secrets")) as fh:
                password = fh.read().strip()
        self.node = JsonRpc("http://127.0.0.1:%s" % os.environ.get("LITECOIN_RPC_PORT", "19443"),
                            (os.environ.get("LITECOIN_RPC_USER", "exchanger"), password), timeout=30)
        self.demo = self.node.with_path("/wallet/demo")
        self.miner = self.node.with_path("/wallet/miner").call("getnewaddress", "", "bech32")

    def height(self):
        return self.node.call("getblockcount")

    def mine(self):
        self.node.call("generatetoaddress", 1, self.miner)

    def pay(self, address, amount):
        txid = self.demo.call("sendtoaddress", address, amount)
        self.node.call("sendrawtransaction", self.demo.call("gettransaction", txid)["hex"])
        return txid

    def block_of(self, txid):
        return self.demo.call("gettransaction", txid).get("blockheight")

    def new_recipient(self):
        return self.demo.call("getnewaddress", "bench-payout", "bech32")

    def received(self, addresses):
        """{address: number of receiving outputs}, from the chain and mempool."""
        wanted, counts = set(addresses), {}
        for t in self.demo.call("listtransactions", "bench-payout", 100000):
            if t["category"] == "receive" and t["address"] in wanted:
                counts[t["address"]] = counts.get(t["address"], 0) + 1
        return counts


class EvmChain:
    currency, deposit_amount = "USDTERC20", "5"

    def __init__(self):
        from devchains.evm import AnvilNode
        chains_dir = os.environ.get("CHAINS_DIR", os.path.join(ROOT, "var", "chains"))
        self.anvil = AnvilNode(os.path.join(chains_dir, "evm"), os.environ.get("EVM_RPC_PORT", "8545"),
                               keys_file=os.environ.get("EVM_KEYS_FILE"))
        self.node = self.anvil.rpc()
        self.token = self.anvil.token_address()
        self.lock = threading.Lock()

    def height(self):
        return int(self.node.call("eth_blockNumber"), 16)

    def mine(self):
        self.node.call("evm_mine")

    def pay(self, address, amount):
        with self.lock:   # one sender: its nonces in order
            return self.anvil.send_token("demo", address, amount)

    def block_of(self, txid):
        receipt = self.node.call("eth_getTransactionReceipt", txid)
        return int(receipt["blockNumber"], 16) if receipt and receipt.get("blockNumber") else None

    def new_recipient(self):
        from eth_account import Account
        return Account.create().address

    def received(self, addresses):
        from devchains.evm import _address_word
        counts = {}
        for address in addresses:
            logs = self.node.call("eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest", "address": self.token,
                                                  "topics": [None, None, "0x" + _address_word(address)]})
            pending = self.node.call("eth_getBlockByNumber", "pending", True) or {}
            in_pool = [t for t in pending.get("transactions", []) if isinstance(t, dict) and
                       t.get("input", "").lower().find(_address_word(address)) >= 0]
            if logs or in_pool:
                counts[address] = len(logs) + len(in_pool)
        return counts


def measure(chain, api, sandbox_account, pay_sandbox, n_deposits, n_payouts, mine_seconds, spread):
    heights = Heights(chain, mine_seconds)
    heights.start()
    directions = api("GET", "/api/v1/directions").json()
    to_eur = next(d for d in directions if (d["currency_in"], d["currency_out"], d["exchange_type"]) ==
                  (chain.currency, "EUR", "auto"))
    from_eur = next(d for d in directions if (d["currency_in"], d["currency_out"], d["exchange_type"]) ==
                    ("EUR", chain.currency, "auto"))

    def create(direction, amount, recipient, i):
        r = api("POST", "/api/v1/orders", json={"direction_id": direction["id"], "amount_in": amount,
                                                "recipient": recipient, "email": "bench-chain-%d@example.com" % i})
        if r.status_code != 201:
            raise SystemExit("cannot create an order: %s %s" % (r.status_code, r.text))
        return r.json()

    # -- phase 1: deposits ------------------------------------------------------------------------------------------
    eur_recipient = sandbox_account("EUR")
    deposits = [create(to_eur, chain.deposit_amount, eur_recipient, i) for i in range(n_deposits)]
    txids = {}
    addresses = {o["id"]: api("GET", "/api/v1/orders/%s/deposit" % o["token"]).json()["address"] for o in deposits}
    # Paid at random moments over `spread` seconds, so the deposits reach their depth in many different blocks
    # (and meet the poll timer in every phase), not all in one.
    rng = random.Random(7)
    for order in deposits:
        time.sleep(rng.uniform(0, 2 * spread / max(1, len(deposits))))
        txids[order["id"]] = chain.pay(addresses[order["id"]], order["pay_to"]["amount"])
    required = api("GET", "/api/v1/orders/%s/deposit" % deposits[0]["token"]).json()["required_confirmations"]
    detect_ms, pending = [], {o["id"]: o for o in deposits}
    deadline = time.time() + 300
    while pending and time.time() < deadline:
        for order_id, order in list(pending.items()):
            current = api("GET", "/api/v1/orders/%s" % order["token"]).json()
            paid = [h for h in current.get("history", []) if h["to_status"] == "paid"]
            if not paid:
                continue
            depth_height = chain.block_of(txids[order_id]) + required - 1
            if depth_height not in heights.seen:
                continue
            paid_at = datetime.datetime.fromisoformat(paid[0]["at"]).timestamp()
            detect_ms.append((paid_at - heights.seen[depth_height]) * 1000)
            del pending[order_id]
        time.sleep(0.2)

    # -- phase 2: payouts ------------------------------------------------------------------------------------------
    payer = sandbox_account("EUR", balance=str(10 * n_payouts + 100))
    recipients = [chain.new_recipient() for _ in range(n_payouts)]
    payout_orders = [create(from_eur, "6", recipients[i], 1000 + i) for i in range(n_payouts)]
    started = time.time()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda o: pay_sandbox(payer, o), payout_orders))
    last_broadcast, waiting = started, set(recipients)
    deadline = time.time() + 300
    while waiting and time.time() < deadline:
        seen = chain.received(list(waiting))
        for address in seen:
            waiting.discard(address)
            last_broadcast = time.time()
        time.sleep(0.1)
    payouts_per_s = (n_payouts - len(waiting)) / max(0.001, last_broadcast - started)
    completed = {o["id"]: False for o in payout_orders}
    deadline = time.time() + 300
    while not all(completed.values()) and time.time() < deadline:
        for order in payout_orders:
            if not completed[order["id"]]:
                completed[order["id"]] = api("GET", "/api/v1/orders/%s" % order["token"]).json()[
                    "status"] == "completed"
        time.sleep(0.5)
    heights.stop.set()
    double = sum(max(0, n - 1) for n in chain.received(recipients).values())
    return {
        "deposits": n_deposits, "deposits_detected": len(detect_ms), "required_confirmations": required,
        "detect_p50_ms": round(percentile(detect_ms, 0.5) or 0), "detect_p99_ms": round(percentile(detect_ms, 0.99) or 0),
        "payouts": n_payouts, "payouts_broadcast": n_payouts - len(waiting),
        "payouts_completed": sum(completed.values()), "payouts_per_s": round(payouts_per_s, 2),
        "double_payouts": double,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:%s" % os.environ.get("GATEWAY_PORT", "8000"))
    parser.add_argument("--sandbox-url", default="http://127.0.0.1:%s" % os.environ.get("SANDBOX_PORT", "8090"))
    parser.add_argument("--rails", default="litecoin,evm")
    parser.add_argument("--deposits", type=int, default=20)
    parser.add_argument("--payouts", type=int, default=30)
    parser.add_argument("--mine-seconds", type=float, default=2.0)
    parser.add_argument("--spread", type=float, default=30.0, help="seconds over which the deposits are paid")
    args = parser.parse_args()
    http = requests.Session()

    def api(method, path, **kw):
        return http.request(method, args.url.rstrip("/") + path, timeout=30, **kw)

    def sandbox_account(currency, balance="0"):
        r = requests.post(args.sandbox_url.rstrip("/") + "/api/accounts", timeout=30,
                          json={"currency": currency, "balance": balance, "owner": "bench-chains"})
        r.raise_for_status()
        return r.json()["account"]

    def pay_sandbox(payer, order):
        pay_to = order["pay_to"]
        r = requests.post(args.sandbox_url.rstrip("/") + "/api/transfers", timeout=30, json={
            "from_account": payer, "to_account": pay_to["account"], "amount": pay_to["amount"],
            "currency": pay_to["currency"], "reference": pay_to["reference"]})
        r.raise_for_status()

    chains = {"litecoin": LitecoinChain, "evm": EvmChain}
    result = {"poll_interval_s": float(os.environ.get("PAYMENTS_POLL_SECONDS", "2"))}
    for rail in [r.strip() for r in args.rails.split(",") if r.strip()]:
        result[rail] = measure(chains[rail](), api, sandbox_account, pay_sandbox, args.deposits, args.payouts,
                               args.mine_seconds, args.spread)
    rails = [v for k, v in result.items() if isinstance(v, dict)]
    result.update(detect_p99_ms=max(r["detect_p99_ms"] for r in rails),
                  payouts_per_s=min(r["payouts_per_s"] for r in rails),
                  double_payouts=sum(r["double_payouts"] for r in rails))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
