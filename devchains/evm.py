"""A local EVM chain of our own: anvil (npm @foundry-rs/anvil, its binary in the platform package) with no automatic
mining (blocks come from the chains process's interval or from the tests: confirmations mean something), its state
kept in the data folder, and the demo token (contracts/TestUSDT.sol, compiled by contracts/compile.sh) deployed from
the bytecode kept beside its source.

Keys: the exchanger's hot wallet and the demo customer's are generated at the first start into a JSON file named
by EVM_KEYS_FILE (default <data folder>/evm-keys.json, mode 0600); nothing secret is in the repository. anvil's own
unlocked development account deploys and mints only.
"""
import json
import os
from decimal import Decimal
import shutil
import subprocess
import time

from devchains.litecoin import _die_with_parent
from libs.jsonrpc import JsonRpc, RpcError, RpcUnavailable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANVIL = os.environ.get("ANVIL_BINARY", os.path.join(
    ROOT, "deploy", "local", "node", "node_modules", "@foundry-rs", "anvil-linux-amd64", "bin", "anvil"))
CONTRACTS = os.path.join(ROOT, "devchains", "contracts")
DECIMALS = 6
MINT_SELECTOR = "40c10f19"       # mint(address,uint256)
CHAIN_ID = 31337


def token_bytecode():
    with open(os.path.join(CONTRACTS, "TestUSDT.bin")) as fh:
        return "0x" + fh.read().strip()


def _word(value):
    return format(int(value), "064x")


def _address_word(address):
    return address.lower().replace("0x", "").rjust(64, "0")


class AnvilNode:
    def __init__(self, datadir, port, keys_file=None):
        self.datadir = os.path.abspath(datadir)
        self.port = int(port)
        self.url = "http://127.0.0.1:%d" % self.port
        self.keys_file = keys_file or os.path.join(self.datadir, "evm-keys.json")
        self.proc = None

    def rpc(self, timeout=30):
        return JsonRpc(self.url, timeout=timeout, version="2.0")

    def start(self, reset=False, log=None):
        if reset and os.path.isdir(self.datadir):
            shutil.rmtree(self.datadir)
        os.makedirs(self.datadir, exist_ok=True)
        args = [ANVIL, "--port", str(self.port), "--host", "127.0.0.1", "--chain-id", str(CHAIN_ID),
                "--no-mining", "--silent", "--state", os.path.join(self.datadir, "anvil-state.json")]
        self.proc = subprocess.Popen(args, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("anvil exited with %s" % self.proc.returncode)
            try:
                self.rpc().call("eth_blockNumber")
                return self
            except (RpcUnavailable, RpcError):
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()   # anvil writes its --state file on a clean exit
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    # -- set-up ------------------------------------------------------------------------------------------------
    def keys(self):
        """{hot, demo, hd_mnemonic}: private keys (hex) and the seed of the per-order deposit addresses, generated
        once into keys_file."""
        if not os.path.exists(self.keys_file):
            from eth_account import Account
            Account.enable_unaudited_hdwallet_features()
            keys = {name: Account.create().key.hex() for name in ("hot", "demo")}
            keys["hd_mnemonic"] = Account.create_with_mnemonic()[1]
            fd = os.open(self.keys_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(keys, fh)
        with open(self.keys_file) as fh:
            return json.load(fh)

    def address(self, name):
        from eth_account import Account
        return Account.from_key(self.keys()[name]).address

    def mine(self, blocks=1):
        for _ in range(int(blocks)):
            self.rpc().call("evm_mine")

    def height(self):
        return int(self.rpc().call("eth_blockNumber"), 16)

    def _send_from_dev(self, data, to=None):
        node = self.rpc()
        dev = node.call("eth_accounts")[0]
        tx = {"from": dev, "data": data, "gas": hex(2_000_000)}
        if to:
            tx["to"] = to
        txid = node.call("eth_sendTransaction", tx)
        self.mine(1)
        receipt = node.call("eth_getTransactionReceipt", txid)
        if receipt is None or receipt["status"] != "0x1":
            raise RuntimeError("development transaction %s failed: %r" % (txid, receipt))
        return receipt

    def token_address(self):
        path = os.path.join(self.datadir, "token-address")
        if os.path.exists(path):
            with open(path) as fh:
                return fh.read().strip()
        return None

    def setup(self, mint_units=1_000_000):
        """Deploy the token once, give hot and demo gas money and `mint_units` USDT each."""
        token = self.token_address()
        if token and self.rpc().call("eth_getCode", token, "latest") not in ("0x", None):
            return token
        token = self._send_from_dev(token_bytecode())["contractAddress"]
        node = self.rpc()
        for name in ("hot", "demo"):
            address = self.address(name)
            node.call("anvil_setBalance", address, hex(100 * 10 ** 18))
            self._send_from_dev("0x" + MINT_SELECTOR + _address_word(address) + _word(mint_units * 10 ** DECIMALS),
                                to=token)
        with open(os.path.join(self.datadir, "token-address"), "w") as fh:
            fh.write(token)
        return token

    def token_balance(self, token, address):
        data = "0x70a08231" + _address_word(address)      # balanceOf(address)
        return int(self.rpc().call("eth_call", {"to": token, "data": data}, "latest"), 16)

    def send_token(self, wallet, address, amount):
        """Pay `amount` USDT from a wallet of the keys file (the demo customer): the transaction's hash."""
        from eth_account import Account
        from eth_utils import to_checksum_address
        sender = Account.from_key(self.keys()[wallet])
        node = self.rpc()
        units = int(Decimal(amount) * 10 ** DECIMALS)
        tx = {"to": to_checksum_address(self.token_address()), "value": 0, "gas": 100000,
              "maxFeePerGas": 2 * int(node.call("eth_gasPrice"), 16) + 10 ** 9, "maxPriorityFeePerGas": 10 ** 9,
              "nonce": int(node.call("eth_getTransactionCount", sender.address, "pending"), 16),
              "chainId": CHAIN_ID, "type": 2,
              "data": "0xa9059cbb" + _address_word(address) + _word(units)}
        raw = sender.sign_transaction(tx).raw_transaction.hex()
        return node.call("eth_sendRawTransaction", raw if raw.startswith("0x") else "0x" + raw)
