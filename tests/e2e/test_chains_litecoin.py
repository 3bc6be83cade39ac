"""End to end against a real Litecoin regtest node (docs/chains.md): the suite's own node, started by the Procfile's
`chains` process as make run starts it, on the suite's ports and folder; the tests mine the blocks themselves.

Deposits reach an order by its own address (no memo), are credited only at the required depth (3), and the order
page shows the confirmations growing; payouts are signed, committed, broadcast and completed at depth, and the
recipient's address receives exactly amount_out once; a reorganisation takes a deposit below its depth away from
its order, and a payout knocked out of the chain is mined again from the same bytes."""
import os
import re
from decimal import Decimal as D

import pytest

from devchains.litecoin import LitecoinNode
from libs.jsonrpc import RpcError, RpcUnavailable
from tests.conftest import eventually
from tests.e2e.conftest import CHAINS_DIR, LITECOIN_RPC_PORT
from tests.e2e.test_payments_flow import balance, new_order, order_payments, pay, status_is

pytestmark = pytest.mark.timeout(180)

REQUIRED = 3


@pytest.fixture(scope="module")
def ltc(system, admin_token):
    node = LitecoinNode(os.path.join(CHAINS_DIR, "litecoin"), LITECOIN_RPC_PORT, LITECOIN_RPC_PORT + 1, "e2e",
                        "e2e-litecoin-rpc")

    def funded():
        try:
            assert D(node.rpc("hot").call("getbalances")["mine"]["trusted"]) > 100
            assert len(node.rpc("hot").call("listunspent", 1)) >= 60   # the set-up's last step: coins split
        except (RpcError, RpcUnavailable) as exc:
            raise AssertionError("the node is not set up yet: %s" % exc)
        accounts = system.api("GET", "/api/v1/admin/payments/accounts", token=admin_token).json()
        hot = next(a for a in accounts if a["account"] == "LTC-HOT")
        assert hot["balance"] is not None and D(hot["balance"]) > 100, hot
        reserve = next(d for d in system.api("GET", "/api/v1/directions").json() if d["currency_out"] == "LTC")
        assert D(reserve["reserve"]) > 100
        return True
    eventually(funded, timeout=90, interval=0.5, message="the chains process funded the hot wallet")
    return node


def direction(system, currency_in, currency_out):
    return next(d for d in system.api("GET", "/api/v1/directions").json()
                if d["currency_in"] == currency_in and d["currency_out"] == currency_out and d["exchange_type"] == "auto")


def deposit(system, order):
    r = system.api("GET", "/api/v1/orders/%s/deposit" % order["token"])
    assert r.status_code == 200, r.text
    return r.json()


def page_confirmations(system, order):
    """What the customer's order page says of the deposit: 'n / 3'."""
    html = system.http.get(system.url + "/orders/%s" % order["token"], timeout=30).text
    return re.findall(r'<span class="confirmations">(\d+) / (\d+)</span>', html)


def mine_and_wait(system, ltc, blocks=1):
    """Mine and wait until payments has followed the chain to the new tip."""
    ltc.mine(blocks)
    tip = ltc.height()
    eventually(lambda: (system.sql("SELECT max(height) AS h FROM payments.chain_blocks WHERE system = 'litecoin'")[0]["h"]
                        or 0) >= tip, timeout=30, interval=0.2, message="payments followed to %d" % tip)


def test_ltc_deposit_confirmations_grow_on_the_page_and_the_order_is_paid_only_at_depth(system, ltc, admin_token):
    order = new_order(system, direction(system, "LTC", "EUR"), amount="0.05")
    address = deposit(system, order)["address"]
    assert address.startswith("rltc1") and address != order["pay_to"]["account"]
    html = system.http.get(system.url + "/orders/%s" % order["token"], timeout=30).text
    assert address in html

    recipient_before = balance(system, order["recipient"])
    txid = ltc.send("demo", address, order["pay_to"]["amount"])
    for depth in range(1, REQUIRED):
        mine_and_wait(system, ltc)
        [d] = deposit(system, order)["deposits"]
        assert d["txid"] == txid and d["confirmations"] == depth and d["status"] == "confirming"
        assert page_confirmations(system, order) == [(str(depth), str(REQUIRED))]
        assert system.api("GET", "/api/v1/orders/%s" % order["token"]).json()["status"] == "new"
    mine_and_wait(system, ltc)
    done = status_is(system, order, "completed")
    assert D(done["amount_received"]) == D(order["pay_to"]["amount"])
    [d] = deposit(system, order)["deposits"]
    assert d["status"] == "credited"
    [payment] = order_payments(system, admin_token, order)["payments"]
    assert payment["external_id"].startswith(txid + ":")
    assert balance(system, order["recipient"]) - recipient_before == D(order["amount_out"])


def test_eur_to_ltc_auto_pays_the_address_exactly_amount_out_once(system, ltc, admin_token):
    recipient = ltc.rpc("demo").call("getnewaddress", "e2e-recipient", "bech32")
    order = new_order(system, direction(system, "EUR", "LTC"), amount="40", recipient=recipient)
    pay(system, order)

    def broadcast():
        rows = system.sql("SELECT t.* FROM payments.chain_txs t JOIN payments.payouts p "
                          "ON p.idempotency_key = t.idempotency_key WHERE p.order_id = %s", (order["id"],))
        assert len(rows) == 1 and rows[0]["broadcasts"] >= 1, rows
        return rows[0]
    tx = eventually(broadcast, timeout=30, interval=0.2, message="payout signed and broadcast")
    assert tx["txid"] in ltc.rpc().call("getrawmempool")
    assert D(tx["fee"]) > 0 and D(tx["amount"]) == D(order["amount_out"])
    for _ in range(REQUIRED - 1):
        mine_and_wait(system, ltc)
        assert system.api("GET", "/api/v1/orders/%s" % order["token"]).json()["status"] == "payout"
    mine_and_wait(system, ltc)
    status_is(system, order, "completed")
    [payout] = order_payments(system, admin_token, order)["payouts"]
    assert payout["status"] == "sent" and payout["provider_id"] == tx["txid"]
    received = ltc.rpc("demo").call("getreceivedbyaddress", recipient, 1)
    assert D(received) == D(order["amount_out"])
    # One transaction paid the address, once.
    paying = [t for t in ltc.rpc("demo").call("listtransactions", "e2e-recipient", 100)
              if t["category"] == "receive" and t["address"] == recipient]
    assert [(t["txid"], D(t["amount"])) for t in paying] == [(tx["txid"], D(order["amount_out"]))]


def _double_spend_tip(ltc, txid):
    """Knock the block holding the demo wallet's `txid` out of the chain and mine, instead, a block where the same
    coins go back to the demo wallet: the deposit is gone for good (a double spend by reorganisation)."""
    demo = ltc.rpc("demo")
    tx = demo.call("gettransaction", txid)
    block = tx["blockhash"]
    decoded = ltc.rpc().call("decoderawtransaction", tx["hex"])
    inputs = [{"txid": i["txid"], "vout": i["vout"]} for i in decoded["vin"]]
    total, prevtxs = D(0), []
    for i in inputs:
        out = ltc.rpc().call("getrawtransaction", i["txid"], True)["vout"][i["vout"]]
        total += D(out["value"])
        prevtxs.append(dict(i, scriptPubKey=out["scriptPubKey"]["hex"], amount=format(D(out["value"]), "f")))
    back = demo.call("getnewaddress", "double-spend", "bech32")
    raw = demo.call("createrawtransaction", inputs, [{back: format(total - D("0.001"), "f")}])
    signed = demo.call("signrawtransactionwithwallet", raw, prevtxs)
    assert signed["complete"], signed
    ltc.rpc().call("invalidateblock", block)
    ltc.rpc().call("generateblock", ltc.miner_address(), [signed["hex"]])
    return block


def test_ltc_deposit_dropped_by_a_reorg_below_its_depth_unpays_the_order(system, ltc, admin_token):
    order = new_order(system, direction(system, "LTC", "EUR"), amount="0.03")
    address = deposit(system, order)["address"]
    txid = ltc.send("demo", address, order["pay_to"]["amount"])
    mine_and_wait(system, ltc)
    [d] = deposit(system, order)["deposits"]
    assert d["confirmations"] == 1 and d["status"] == "confirming"

    _double_spend_tip(ltc, txid)
    mine_and_wait(system, ltc, REQUIRED)   # the new chain is longer than the old one
    [d] = deposit(system, order)["deposits"]
    assert d["txid"] == txid and d["status"] == "removed" and d["confirmations"] == 0
    assert page_confirmations(system, order) == [("0", str(REQUIRED))]
    current = system.api("GET", "/api/v1/orders/%s" % order["token"]).json()
    assert current["status"] == "new" and D(current["amount_received"] or 0) == 0
    seen = order_payments(system, admin_token, order)
    assert seen["payments"] == [] and seen["payouts"] == []
    assert system.sql("SELECT count(*) AS n FROM payments.chain_blocks WHERE system = 'litecoin'")[0]["n"] > 0


def test_ltc_payout_knocked_out_by_a_reorg_is_mined_again_from_the_same_bytes(system, ltc, admin_token):
    recipient = ltc.rpc("demo").call("getnewaddress", "e2e-reorg-recipient", "bech32")
    order = new_order(system, direction(system, "EUR", "LTC"), amount="20", recipient=recipient)
    pay(system, order)

    def broadcast():
        rows = system.sql("SELECT t.* FROM payments.chain_txs t JOIN payments.payouts p "
                          "ON p.idempotency_key = t.idempotency_key WHERE p.order_id = %s", (order["id"],))
        assert len(rows) == 1 and rows[0]["broadcasts"] >= 1, rows
        return rows[0]
    tx = eventually(broadcast, timeout=30, interval=0.2, message="payout broadcast")
    mine_and_wait(system, ltc)
    first_block = ltc.rpc().call("getrawtransaction", tx["txid"], True)["blockhash"]
    ltc.rpc().call("invalidateblock", first_block)
    # Empty blocks: the new chain does not carry the payout; the node keeps it in its mempool.
    for _ in range(2):
        ltc.rpc().call("generateblock", ltc.miner_address(), [])
    assert ltc.rpc().call("getrawtransaction", tx["txid"], True).get("confirmations", 0) == 0
    for _ in range(REQUIRED):
        mine_and_wait(system, ltc)
    status_is(system, order, "completed")
    [payout] = order_payments(system, admin_token, order)["payouts"]
    assert payout["provider_id"] == tx["txid"]
    rows = system.sql("SELECT txid, raw FROM payments.chain_txs WHERE idempotency_key = %s",
                      (payout["idempotency_key"],))
    assert [(r["txid"], r["raw"]) for r in rows] == [(tx["txid"], tx["raw"])]
    assert D(ltc.rpc("demo").call("getreceivedbyaddress", recipient, 1)) == D(order["amount_out"])
