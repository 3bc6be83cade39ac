"""A Litecoin regtest node of our own: the real binary (/usr/lib/litecoin/litecoind, not Debian's wrapper in
/usr/bin, which writes a configuration into the home folder), its own -datadir, RPC credentials from the caller.

Wallets: `hot` is the exchanger's (deposit addresses and payouts), `demo` a customer's, `miner` takes the block
rewards. `setup()` creates them and funds hot and demo once (regtest coinbase outputs mature after 100 blocks).
"""
import ctypes
import os
import shutil
import signal
import subprocess
import time
from decimal import Decimal

from libs.jsonrpc import JsonRpc, RpcError, RpcUnavailable

LITECOIND = os.environ.get("LITECOIND_BINARY", "/usr/lib/litecoin/litecoind")


def _die_with_parent():
    """The node goes when the process that started it goes, however it goes (Linux: PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass
WALLETS = ("hot", "demo", "miner")


class LitecoinNode:
    def __init__(self, datadir, rpc_port, p2p_port, rpc_user, rpc_password):
        self.datadir = os.path.abspath(datadir)
        self.rpc_port = int(rpc_port)
        self.p2p_port = int(p2p_port)
        self.auth = (rpc_user, rpc_password)
        self.url = "http://127.0.0.1:%d" % self.rpc_port
        self.proc = None

    # -- process ---------------------------------------------------------------------------------------------
    def _stop_leftover(self):
        """A node of an earlier run still answering on our port (its starter was killed) is stopped first."""
        try:
            self.rpc(timeout=5).call("stop")
        except (RpcUnavailable, RpcError):
            return
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                self.rpc(timeout=2).call("getblockcount")
            except RpcUnavailable:
                return
            except RpcError:
                pass
            time.sleep(0.2)

    def start(self, reset=False, log=None):
        self._stop_leftover()
        if reset and os.path.isdir(self.datadir):
            shutil.rmtree(self.datadir)
        os.makedirs(self.datadir, exist_ok=True)
        args = [LITECOIND, "-regtest", "-datadir=" + self.datadir, "-server=1", "-listen=0",
                "-port=%d" % self.p2p_port, "-rpcport=%d" % self.rpc_port, "-rpcbind=127.0.0.1",
                "-rpcallowip=127.0.0.1", "-rpcuser=" + self.auth[0], "-rpcpassword=" + self.auth[1],
                "-fallbackfee=0.0001", "-txindex=1", "-printtoconsole=0", "-walletbroadcast=0",
                "-rpcworkqueue=64", "-rpcthreads=8", "-keypool=20",
                # A payout never spends change still unconfirmed: a payout whose parent is lost (a node crash
                # empties the mempool) could never be broadcast again from its stored bytes.
                "-spendzeroconfchange=0",
                # Fee bumps replace a stuck payout (same inputs, higher fee): Litecoin Core relays replacements
                # only with this on.
                "-mempoolreplacement=1"]
        self.proc = subprocess.Popen(args, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("litecoind exited with %s (see %s/regtest/debug.log)" % (
                    self.proc.returncode, self.datadir))
            try:
                self.rpc().call("getblockcount")
                return self
            except (RpcUnavailable, RpcError):
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self):
        if self.proc is None:
            return
        try:
            self.rpc().call("stop")
            self.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001 - stopping: kill what does not stop
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def kill(self):
        """As a crash would: no clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    # -- RPC -------------------------------------------------------------------------------------------------
    def rpc(self, wallet=None, timeout=30):
        client = JsonRpc(self.url, self.auth, timeout=timeout)
        return client.with_path("/wallet/%s" % wallet) if wallet else client

    def setup(self):
        """Create or load the wallets; on a new chain mine the hot and demo wallets their coins."""
        node = self.rpc()
        loaded = set(node.call("listwallets"))
        on_disk = {w["name"] for w in node.call("listwalletdir")["wallets"]}
        for name in WALLETS:
            if name in loaded:
                continue
            if name in on_disk:
                node.call("loadwallet", name)
            else:
                node.call("createwallet", name)
        if node.call("getblockcount") < 110:
            hot = self.rpc("hot").call("getnewaddress", "funding", "bech32")
            demo = self.rpc("demo").call("getnewaddress", "funding", "bech32")
            # 4 coinbases of 50 LTC each to hot and demo, then 101 blocks so they mature.
            for address in (hot, demo):
                for _ in range(4):
                    node.call("generatetoaddress", 1, address)
            self.mine(101)
            # Many confirmed coins in each wallet: payouts and customer payments (which never spend unconfirmed
            # change) can go out side by side between two blocks.
            for name in ("hot", "demo"):
                wallet = self.rpc(name)
                split = {wallet.call("getnewaddress", "split-%d" % i, "bech32"): "3" for i in range(60)}
                txid = wallet.call("sendmany", "", split)
                self.rpc().call("sendrawtransaction", wallet.call("gettransaction", txid)["hex"])
            self.mine(1)
        return self

    def miner_address(self):
        return self.rpc("miner").call("getnewaddress", "", "bech32")

    def mine(self, blocks=1):
        return self.rpc().call("generatetoaddress", int(blocks), self.miner_address())

    def height(self):
        return self.rpc().call("getblockcount")

    def send(self, wallet, address, amount):
        """Pay `amount` LTC from a wallet (the demo customer) and broadcast it: the txid."""
        txid = self.rpc(wallet).call("sendtoaddress", address, format(Decimal(amount), "f"))
        # -walletbroadcast=0 keeps the exchanger's own wallet from broadcasting behind our back (payouts are
        # broadcast by the payments service after it committed them); a customer's wallet sends explicitly.
        raw = self.rpc(wallet).call("gettransaction", txid)["hex"]
        self.rpc().call("sendrawtransaction", raw)
        return txid

    def balance(self, address):
        """What an address has received in confirmed outputs still unspent (scanned from the UTXO set)."""
        found = self.rpc().call("scantxoutset", "start", ["addr(%s)" % address])
        return Decimal(str(found["total_amount"])).quantize(Decimal("0.00000001"))
