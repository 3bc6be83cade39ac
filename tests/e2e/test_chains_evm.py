"""End to end against anvil with the demo USDT (docs/chains.md, "EVM"): the suite's own chain, started by the
Procfile's `chains` process; the tests mine. An auto USDTERC20->EUR order is paid to its own HD-derived address,
confirmations grow on its page and it completes only at depth 3; an EUR->USDTERC20 order's recipient address
receives exactly amount_out, in one transfer, once (counted from the chain's Transfer logs)."""
import os
import re
from decimal import Decimal as D

import pytest

from devchains.evm import AnvilNode, _address_word
from libs.jsonrpc import RpcError, RpcUnavailable
from tests.conftest import eventually
from tests.e2e.conftest import CHAINS_DIR, EVM_RPC_PORT
from tests.e2e.test_payments_flow import balance, new_order, order_payments, pay, status_is

pytestmark = pytest.mark.timeout(180)

REQUIRED = 3


@pytest.fixture(scope="module")
def evm(system, admin_token):
    node = AnvilNode(os.path.join(CHAINS_DIR, "evm"), EVM_RPC_PORT)

    def funded():
        try:
            token = node.token_address()
            assert token and node.token_balance(token, node.address("hot")) > 0
        except (RpcError, RpcUnavailable, OSError, KeyError) as exc:
            raise AssertionError("anvil is not set up yet: %s" % exc)
        reserve = next(d for d in system.api("GET", "/api/v1/directions").json() if d["currency_out"] == "USDTERC20")
        assert D(reserve["reserve"]) > 1000, reserve
        return True
    eventually(funded, timeout=90, interval=0.5, message="the chains process deployed and funded the token")
    node.token = node.token_address()
    return node


def direction(system, currency_in, currency_out):
    return next(d for d in system.api("GET", "/api/v1/directions").json()
                if (d["currency_in"], d["currency_out"], d["exchange_type"]) == (currency_in, currency_out, "auto"))


def mine_and_wait(system, evm, blocks=1):
    evm.mine(blocks)
    tip = evm.height()
    eventually(lambda: (system.sql("SELECT max(height) AS h FROM payments.chain_blocks WHERE system = 'evm'")[0]["h"]
                        or 0) >= tip, timeout=30, interval=0.2, message="payments followed to %d" % tip)


def deposit(system, order):
    r = system.api("GET", "/api/v1/orders/%s/deposit" % order["token"])
    assert r.status_code == 200, r.text
    return r.json()


def transfers_to(evm, address):
    logs = evm.rpc().call("eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest", "address": evm.token,
                                          "topics": [None, None, "0x" + _address_word(address)]})
    return [(entry["transactionHash"], int(entry["data"], 16)) for entry in logs]


def test_usdt_to_eur_auto_completes_at_depth_with_confirmations_on_the_page(system, evm, admin_token):
    order = new_order(system, direction(system, "USDTERC20", "EUR"), amount="25")
    address = deposit(system, order)["address"]
    assert address.startswith("0x") and len(address) == 42
    before = balance(system, order["recipient"])
    txid = evm.send_token("demo", address, order["pay_to"]["amount"])
    for depth in range(1, REQUIRED):
        mine_and_wait(system, evm)
        [d] = deposit(system, order)["deposits"]
        assert d["txid"] == txid and d["confirmations"] == depth and d["status"] == "confirming"
        html = system.http.get(system.url + "/orders/%s" % order["token"], timeout=30).text
        assert re.findall(r'<span class="confirmations">(\d+) / (\d+)</span>', html) == [(str(depth), str(REQUIRED))]
        assert system.api("GET", "/api/v1/orders/%s" % order["token"]).json()["status"] == "new"
    mine_and_wait(system, evm)
    done = status_is(system, order, "completed")
    assert D(done["amount_received"]) == D("25")
    assert balance(system, order["recipient"]) - before == D(order["amount_out"])


def test_eur_to_usdt_pays_the_address_exactly_amount_out_once(system, evm, admin_token):
    from eth_account import Account
    recipient = Account.create().address
    order = new_order(system, direction(system, "EUR", "USDTERC20"), amount="30", recipient=recipient)
    pay(system, order)

    def broadcast():
        rows = system.sql("SELECT t.* FROM payments.chain_txs t JOIN payments.payouts p "
                          "ON p.idempotency_key = t.idempotency_key WHERE p.order_id = %s", (order["id"],))
        assert len(rows) == 1 and rows[0]["broadcasts"] >= 1, rows
        return rows[0]
    tx = eventually(broadcast, timeout=30, interval=0.2, message="payout signed and broadcast")
    assert tx["nonce"] is not None and D(tx["fee"]) > 0
    for _ in range(REQUIRED):
        mine_and_wait(system, evm)
    status_is(system, order, "completed")
    [payout] = order_payments(system, admin_token, order)["payouts"]
    assert payout["status"] == "sent" and payout["provider_id"] == tx["txid"]
    units = int(D(order["amount_out"]) * 10 ** 6)
    assert transfers_to(evm, recipient) == [(tx["txid"], units)]
    assert evm.token_balance(evm.token, recipient) == units
