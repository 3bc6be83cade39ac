"""The EVM rail (docs/chains.md, "EVM") against a real anvil of this test's own (E2E_PORT_BASE + 410) with the demo
token deployed from its kept bytecode, on a private payments schema: nonces under a lock, payouts at most once
through a crash and a reorganisation (anvil_reorg), deposits to per-order HD addresses credited only at depth and
withdrawn when a reorganisation drops them below it."""
import os
import subprocess
import sys
import threading
import uuid
from decimal import Decimal as D

import psycopg2.extras
import pytest

from devchains.evm import AnvilNode, _address_word
from libs.db import Database
from services.payments.adapters import SENT, UNKNOWN
from services.payments.adapters.evm import Adapter
from services.payments.chains import ChainFollower
from services.payments.matching import Matching
from services.payments.store import ChainStore, PaymentStore
from tests.conftest import ROOT, TEST_DATABASE_URL
from tests.interface.payments.harness import drop_schema, migrate_private_schema

pytestmark = pytest.mark.timeout(300)

PORT = int(os.environ.get("E2E_PORT_BASE", "18000")) + 410


@pytest.fixture(scope="module")
def anvil(tmp_path_factory):
    node = AnvilNode(str(tmp_path_factory.mktemp("anvil")), PORT)
    node.start(reset=True)
    node.token = node.setup()
    yield node
    node.stop()


@pytest.fixture
def db():
    schema = "evmtest_%s" % uuid.uuid4().hex[:8]
    migrate_private_schema(schema, "services/payments/migrations")
    database = Database(url=TEST_DATABASE_URL, schema=schema, maxconn=12)
    yield database
    database.close()
    drop_schema(schema)


def adapter_for(anvil, db, **settings):
    adapter = Adapter("evm", dict({"rpc_url": anvil.url, "confirmations": 3}, **settings),
                      environ={"EVM_KEYS_FILE": anvil.keys_file, "EVM_TOKEN_ADDRESS": anvil.token})
    adapter.bind(ChainStore(db))
    return adapter


def fresh_address():
    from eth_account import Account
    return Account.create().address


def settle(anvil, adapter, key):
    for _ in range(4):
        result = adapter.find_payout(key)
        if result is not None and result.status == SENT:
            return result
        anvil.mine(1)
    return adapter.find_payout(key)


def transfers_to(anvil, address):
    """Transfer logs of the token to `address`, from the chain itself."""
    logs = anvil.rpc().call("eth_getLogs", {"fromBlock": "0x0", "toBlock": "latest", "address": anvil.token,
                                            "topics": [None, None, "0x" + _address_word(address)]})
    return [(entry["transactionHash"], int(entry["data"], 16)) for entry in logs]


def test_concurrent_payouts_take_distinct_consecutive_nonces_and_pay_once_each(anvil, db):
    adapter = adapter_for(anvil, db)
    recipients = [fresh_address() for _ in range(8)]
    keys = ["payout-evm-%s" % uuid.uuid4().hex[:8] for _ in recipients]
    results = {}

    def pay(i):
        results[i] = adapter_for(anvil, db).send_payout("USDT-HOT", recipients[i], D("12.5"), "USDT", keys[i], "r")
    threads = [threading.Thread(target=pay, args=(i,)) for i in range(len(recipients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status == UNKNOWN for r in results.values()), results
    nonces = sorted(ChainStore(db).txs_for_key(k)[0]["nonce"] for k in keys)
    assert nonces == list(range(nonces[0], nonces[0] + len(keys)))
    anvil.mine(3)
    for key, recipient in zip(keys, recipients):
        assert adapter.find_payout(key).status == SENT
        [(txid, units)] = transfers_to(anvil, recipient)
        assert units == 12_500_000 and txid == ChainStore(db).txs_for_key(key)[0]["txid"]


CHILD = r"""
import os, sys
from decimal import Decimal
from libs.db import Database
from services.payments.adapters.evm import Adapter
from services.payments.store import ChainStore
url, schema, to, amount, key = sys.argv[1:6]
adapter = Adapter("evm", {"rpc_url": url, "confirmations": 3})
adapter.bind(ChainStore(Database(url=os.environ["DATABASE_URL"], schema=schema, maxconn=2)))
print(adapter.send_payout("USDT-HOT", to, Decimal(amount), "USDT", key, "ref").status)
"""


def test_killed_after_signing_the_same_bytes_and_nonce_go_out_once(anvil, db):
    to = fresh_address()
    key = "payout-evm-%s" % uuid.uuid4().hex[:8]
    env = dict(os.environ, PYTHONPATH=ROOT, DATABASE_URL=TEST_DATABASE_URL, EVM_KEYS_FILE=anvil.keys_file,
               EVM_TOKEN_ADDRESS=anvil.token, CRASH_AT="after_sign")
    child = subprocess.run([sys.executable, "-c", CHILD, anvil.url, db.schema, to, "3", key], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 137, child.stderr
    [tx] = ChainStore(db).txs_for_key(key)
    assert tx["broadcasts"] == 0
    adapter = adapter_for(anvil, db)
    result = settle(anvil, adapter, key)
    assert result.status == SENT and result.provider_id == tx["txid"]
    assert adapter.send_payout("USDT-HOT", to, D("3"), "USDT", key, "ref").status == SENT
    assert [t for t, _ in transfers_to(anvil, to)] == [tx["txid"]]


def test_a_payout_dropped_by_anvil_reorg_is_mined_again_from_the_same_bytes(anvil, db):
    adapter = adapter_for(anvil, db)
    to = fresh_address()
    key = "payout-evm-%s" % uuid.uuid4().hex[:8]
    adapter.send_payout("USDT-HOT", to, D("7"), "USDT", key, "ref")
    anvil.mine(1)
    [tx] = ChainStore(db).txs_for_key(key)
    assert adapter.find_payout(key).transfer["confirmations"] == 1
    anvil.rpc().call("anvil_reorg", 1, [])     # the block with the payout is replaced by one without it
    assert transfers_to(anvil, to) == []
    result = settle(anvil, adapter, key)
    assert result.status == SENT and result.provider_id == tx["txid"]
    assert transfers_to(anvil, to) == [(tx["txid"], 7_000_000)]
    assert [r["raw"] for r in ChainStore(db).txs_for_key(key)] == [tx["raw"]]


def _follow(db, adapter, follower, account_id):
    with db.connection() as conn:
        cur = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
        cur.execute("SELECT * FROM accounts WHERE id = %s", (account_id,))
        account = cur.fetchone()
        conn.commit()
        follower.follow(conn, cur, account, adapter)


def _pay_deposit(anvil, address, units):
    from eth_account import Account
    demo = Account.from_key(anvil.keys()["demo"])
    node = anvil.rpc()
    nonce = int(node.call("eth_getTransactionCount", demo.address, "pending"), 16)
    from eth_utils import to_checksum_address
    tx = {"to": to_checksum_address(anvil.token), "value": 0, "gas": 100000, "maxFeePerGas": 10 ** 10,
          "maxPriorityFeePerGas": 10 ** 9, "nonce": nonce, "chainId": 31337, "type": 2,
          "data": "0xa9059cbb" + _address_word(address) + format(units, "064x")}
    return node.call("eth_sendRawTransaction", "0x" + demo.sign_transaction(tx).raw_transaction.hex().replace("0x", ""))


def test_deposits_to_per_order_addresses_credit_at_depth_and_a_reorg_below_it_withdraws_them(anvil, db):
    adapter = adapter_for(anvil, db)
    store = PaymentStore(db)
    account_id = store.sync_accounts([{"system": "evm", "account": "USDT-HOT", "currency": "USDT"}])[
        ("evm", "USDT-HOT")]
    chain_store = ChainStore(db)
    follower = ChainFollower(Matching(db), chain_store)
    _follow(db, adapter, follower, account_id)       # the cursor starts at the tip
    kept, dropped = [chain_store.insert_deposit_address(order_id, "evm", *adapter.new_deposit_address(
        order_id, "REF%d" % order_id)[:1], "REF%d" % order_id) for order_id in (9001, 9002)]
    assert kept["address"] != dropped["address"] and kept["address"].startswith("0x")

    _pay_deposit(anvil, kept["address"], 5_000_000)
    anvil.mine(1)
    _pay_deposit(anvil, dropped["address"], 6_000_000)
    anvil.mine(1)
    _follow(db, adapter, follower, account_id)
    by_order = {d["order_id"]: d for d in chain_store.order_deposits(9001) + chain_store.order_deposits(9002)}
    assert by_order[9001]["confirmations"] == 2 and by_order[9002]["confirmations"] == 1
    assert {d["status"] for d in by_order.values()} == {"confirming"}

    anvil.rpc().call("anvil_reorg", 1, [])           # the block with order 9002's deposit is replaced
    anvil.mine(1)
    _follow(db, adapter, follower, account_id)
    [kept_deposit] = chain_store.order_deposits(9001)
    [dropped_deposit] = chain_store.order_deposits(9002)
    assert kept_deposit["status"] == "credited" and kept_deposit["confirmations"] == 3
    assert kept_deposit["payment_id"] is not None and D(kept_deposit["amount"]) == D("5")
    assert dropped_deposit["status"] == "removed" and dropped_deposit["payment_id"] is None
    payments = db.fetchall("SELECT external_id, amount FROM payments ORDER BY id")
    assert [(p["external_id"], D(p["amount"])) for p in payments] == [
        ("%s:%d" % (kept_deposit["txid"], kept_deposit["output_index"]), D("5"))]
