"""Litecoin payouts at most once through crashes (docs/chains.md, "Payouts"), against a real regtest node of this
test's own (its port from E2E_PORT_BASE, its folder under the test's tmp dir) and a private payments schema.

The payout path is the adapter's: sign, commit hash and raw bytes (chain_txs), broadcast. A separate Python process
plays the payments service and is killed (CRASH_AT, as a kill would: os._exit) at each point; the survivor's
lookup (the reconciler's find_payout) and resend (send_payout with the same key) must end with exactly one
on-chain transfer to the recipient."""
import os
import subprocess
import sys
import uuid
from decimal import Decimal as D

import pytest

from devchains.litecoin import LitecoinNode
from libs.db import Database
from services.payments.adapters import SENT, UNKNOWN
from services.payments.adapters.litecoin import Adapter
from services.payments.store import ChainStore
from tests.conftest import ROOT, TEST_DATABASE_URL
from tests.interface.payments.harness import drop_schema, migrate_private_schema

pytestmark = pytest.mark.timeout(300)

PORT = int(os.environ.get("E2E_PORT_BASE", "18000")) + 400
AUTH = ("crash", "crash-test-rpc")

CHILD = r"""
import os, sys
from decimal import Decimal
from libs.db import Database
from services.payments.adapters.litecoin import Adapter
from services.payments.store import ChainStore
settings, schema, to, amount, key = sys.argv[1], sys.argv[2], sys.argv[3], Decimal(sys.argv[4]), sys.argv[5]
adapter = Adapter("litecoin", {"rpc_url": settings, "confirmations": 3, "timeout": 5})
adapter.bind(ChainStore(Database(url=os.environ["DATABASE_URL"], schema=schema, maxconn=2)))
result = adapter.send_payout("LTC-HOT", to, amount, "LTC", key, "ref")
if os.environ.get("CRASH_AFTER_CALL"):
    os._exit(137)   # the provider answered; the payouts row is never updated (CRASH_AT=after_provider_call)
print(result.status)
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = LitecoinNode(str(tmp_path_factory.mktemp("ltc")), PORT, PORT + 1, *AUTH)
    n.start(reset=True)
    n.setup()
    yield n
    n.stop()


@pytest.fixture
def chain_store():
    schema = "chaintest_%s" % uuid.uuid4().hex[:8]
    migrate_private_schema(schema, "services/payments/migrations")
    db = Database(url=TEST_DATABASE_URL, schema=schema, maxconn=4)
    yield ChainStore(db)
    db.close()
    drop_schema(schema)


def adapter_for(node, chain_store):
    adapter = Adapter("litecoin", {"rpc_url": node.url, "confirmations": 3, "timeout": 5},
                      environ={"LITECOIN_RPC_USER": AUTH[0], "LITECOIN_RPC_PASSWORD": AUTH[1]})
    adapter.bind(chain_store)
    return adapter


def run_child(node, chain_store, to, amount, key, **env):
    environ = dict(os.environ, PYTHONPATH=ROOT, DATABASE_URL=TEST_DATABASE_URL, LITECOIN_RPC_USER=AUTH[0],
                   LITECOIN_RPC_PASSWORD=AUTH[1], **env)
    return subprocess.run([sys.executable, "-c", CHILD, node.url, chain_store.db.schema, to, str(amount), key],
                          env=environ, cwd=ROOT, capture_output=True, text=True, timeout=120)


def transfers_to(node, address):
    """Every transaction output paying `address`, counted from the chain and mempool by the demo wallet."""
    wallet = node.rpc("demo")
    return [(t["txid"], D(t["amount"])) for t in wallet.call("listtransactions", "*", 1000)
            if t["category"] == "receive" and t.get("address") == address]


def settle(node, adapter, key):
    """Mine the required depth, as the reconciler would keep looking the key up: SENT."""
    result = None
    for _ in range(4):
        result = adapter.find_payout(key)
        if result is not None and result.status == SENT:
            return result
        node.mine(1)
    return adapter.find_payout(key)


def test_killed_after_signing_before_broadcast_the_same_bytes_go_out_once(node, chain_store):
    to = node.rpc("demo").call("getnewaddress", "crash-1", "bech32")
    key = "payout-test-%s" % uuid.uuid4().hex[:8]
    child = run_child(node, chain_store, to, D("1.25"), key, CRASH_AT="after_sign")
    assert child.returncode == 137, child.stderr
    [tx] = chain_store.txs_for_key(key)
    assert tx["broadcasts"] == 0
    assert tx["txid"] not in node.rpc().call("getrawmempool")
    adapter = adapter_for(node, chain_store)
    result = settle(node, adapter, key)     # the lookup finds it nowhere: broadcast again from the stored bytes
    assert result.status == SENT and result.provider_id == tx["txid"]
    # The reconciler may still resend with the same key: the same bytes again, never a new transaction.
    assert adapter.send_payout("LTC-HOT", to, D("1.25"), "LTC", key, "ref").status == SENT
    assert [r["txid"] for r in chain_store.txs_for_key(key)] == [tx["txid"]]
    assert transfers_to(node, to) == [(tx["txid"], D("1.25"))]


def test_killed_after_broadcast_before_recording_is_found_on_chain_not_paid_again(node, chain_store):
    to = node.rpc("demo").call("getnewaddress", "crash-2", "bech32")
    key = "payout-test-%s" % uuid.uuid4().hex[:8]
    child = run_child(node, chain_store, to, D("0.5"), key, CRASH_AFTER_CALL="1")
    assert child.returncode == 137, child.stderr
    [tx] = chain_store.txs_for_key(key)
    assert tx["broadcasts"] == 1 and tx["txid"] in node.rpc().call("getrawmempool")
    adapter = adapter_for(node, chain_store)
    first = adapter.find_payout(key)
    assert first.status == UNKNOWN and first.provider_id == tx["txid"]   # in the mempool: look again later
    # A resend under the same key (the reconciler's) before it is mined: no second transaction.
    adapter.send_payout("LTC-HOT", to, D("0.5"), "LTC", key, "ref")
    result = settle(node, adapter, key)
    assert result.status == SENT and result.provider_id == tx["txid"]
    assert transfers_to(node, to) == [(tx["txid"], D("0.5"))]


def test_node_down_during_broadcast_is_unknown_then_the_same_bytes_go_out_once(node, chain_store):
    to = node.rpc("demo").call("getnewaddress", "crash-3", "bech32")
    key = "payout-test-%s" % uuid.uuid4().hex[:8]
    child = run_child(node, chain_store, to, D("0.75"), key, CRASH_AT="after_sign")
    assert child.returncode == 137, child.stderr
    [tx] = chain_store.txs_for_key(key)
    adapter = adapter_for(node, chain_store)
    node.stop()     # down, not crashed: a regtest node killed loses its unflushed blocks (it has no peers)
    try:
        down = adapter.send_payout("LTC-HOT", to, D("0.75"), "LTC", key, "ref")
        assert down.status == UNKNOWN
    finally:
        node.start()
        node.setup()
    assert [r["txid"] for r in chain_store.txs_for_key(key)] == [tx["txid"]]
    result = settle(node, adapter, key)
    assert result.status == SENT and result.provider_id == tx["txid"]
    assert transfers_to(node, to) == [(tx["txid"], D("0.75"))]


def test_a_fee_above_the_cap_is_refused_before_anything_is_signed(node, chain_store):
    adapter = Adapter("litecoin", {"rpc_url": node.url, "confirmations": 3, "max_fee": "0.00000100"},
                      environ={"LITECOIN_RPC_USER": AUTH[0], "LITECOIN_RPC_PASSWORD": AUTH[1]})
    adapter.bind(chain_store)
    to = node.rpc("demo").call("getnewaddress", "crash-4", "bech32")
    key = "payout-test-%s" % uuid.uuid4().hex[:8]
    result = adapter.send_payout("LTC-HOT", to, D("0.1"), "LTC", key, "ref")
    assert result.status == "failed" and "above the cap" in result.error
    assert chain_store.txs_for_key(key) == [] and adapter.find_payout(key) is None


def test_a_payout_stuck_past_the_deadline_is_replaced_by_a_fee_bump_of_the_same_inputs(node, chain_store):
    adapter = Adapter("litecoin", {"rpc_url": node.url, "confirmations": 3, "bump_after_seconds": 0},
                      environ={"LITECOIN_RPC_USER": AUTH[0], "LITECOIN_RPC_PASSWORD": AUTH[1]})
    adapter.bind(chain_store)
    to = node.rpc("demo").call("getnewaddress", "crash-5", "bech32")
    key = "payout-test-%s" % uuid.uuid4().hex[:8]
    assert adapter.send_payout("LTC-HOT", to, D("0.2"), "LTC", key, "ref").status == UNKNOWN
    adapter.find_payout(key)                      # unconfirmed past the (zero) deadline: bumped
    first, bump = chain_store.txs_for_key(key)
    assert bump["replaces"] == first["txid"] and bump["fee"] > first["fee"]
    mempool = node.rpc().call("getrawmempool")
    assert bump["txid"] in mempool and first["txid"] not in mempool
    node.mine(3)
    result = adapter.find_payout(key)
    assert result.status == SENT and result.provider_id == bump["txid"]
    assert transfers_to(node, to) == [(bump["txid"], D("0.2"))]
