"""Litecoin through litecoind's wallet RPC (docs/chains.md).

    PAYMENT_SYSTEMS:
      litecoin:
        adapter: litecoin
        currency: LTC
        rpc_url: http://127.0.0.1:19443       # unset: http://127.0.0.1:$LITECOIN_RPC_PORT
        rpc_user_env: LITECOIN_RPC_USER        # credentials only from the environment
        rpc_password_env: LITECOIN_RPC_PASSWORD
        wallet: hot                            # the exchanger's wallet: deposit addresses and payouts
        confirmations: 3
        fee_rate: 10                           # sat/vB when the node cannot estimate (regtest)
        max_fee: "0.001"                       # LTC: a payout whose fee would exceed this is refused
        bump_after_seconds: 600                # unconfirmed this long: the same inputs again with a higher fee

Deposits: each order gets `getnewaddress <reference>` of the hot wallet, so its coins are the hot wallet's at once
(no sweeping) and its keys stay in the node's wallet file. Payouts: a PSBT funded by the wallet (inputs locked,
replaceable), signed and finalized, committed, then `sendrawtransaction`; a fee bump is `psbtbumpfee` of the same
inputs, committed before it is broadcast too.
"""
import datetime
import logging
import os
from decimal import Decimal

from libs.jsonrpc import JsonRpc, RpcError, RpcUnavailable
from services.payments.adapters.base import (FAILED, SENT, UNKNOWN, ChainAdapter, ChainTransfer, PayoutResult,
                                             ProviderError)

log = logging.getLogger(__name__)

SATOSHI = Decimal("0.00000001")
# sendrawtransaction answers meaning "these bytes are already there": in a block, or in the mempool.
_ALREADY = ("already in block chain", "txn-already-known", "txn-already-in-mempool", "transaction already in")
# Not broadcastable because an input is spent: by our own replacement (fine, the other one is the payout) or
# by a transaction of a reorganised chain.
_CONFLICT = ("txn-mempool-conflict", "bad-txns-inputs-missingorspent", "missing-inputs", "insufficient fee")


def _utc(ts):
    return datetime.datetime.fromtimestamp(int(ts), tz=datetime.timezone.utc)


def _addresses(script):
    if script.get("address"):
        return [script["address"]]
    return list(script.get("addresses") or [])


class Adapter(ChainAdapter):
    name = "litecoin"

    def __init__(self, system, settings, environ=None):
        super().__init__(system, settings, environ)
        environ = os.environ if environ is None else environ
        self.currency = self.currency or "LTC"
        url = self.settings.get("rpc_url") or "http://127.0.0.1:%s" % environ.get("LITECOIN_RPC_PORT", "19443")
        auth = (environ.get(self.settings.get("rpc_user_env") or "LITECOIN_RPC_USER", ""),
                environ.get(self.settings.get("rpc_password_env") or "LITECOIN_RPC_PASSWORD", ""))
        self.timeout = float(self.settings.get("timeout") or 3)
        self.connect_timeout = min(1.0, self.timeout)
        self.node = JsonRpc(url, auth, timeout=self.timeout, connect_timeout=self.connect_timeout)
        self.wallet = self.node.with_path("/wallet/%s" % (self.settings.get("wallet") or "hot"))
        self.fee_rate = Decimal(str(self.settings.get("fee_rate") or 10))
        self.max_fee = Decimal(str(self.settings.get("max_fee") or "0.001"))
        bump_after = self.settings.get("bump_after_seconds")
        self.bump_after_seconds = float(600 if bump_after in (None, "") else bump_after)

    def _call(self, client, method, *params):
        try:
            return client.call(method, *params)
        except RpcUnavailable as exc:
            raise ProviderError(str(exc)) from exc

    # -- reading the chain -------------------------------------------------------------------------------------
    def tip_height(self):
        return self._call(self.node, "getblockcount")

    def block_hash(self, height):
        try:
            return self._call(self.node, "getblockhash", int(height))
        except RpcError as exc:
            if exc.code == -8:  # height out of range
                return None
            raise ProviderError(str(exc)) from exc

    def block_transfers(self, height, block_hash, addresses):
        try:
            block = self._call(self.node, "getblock", block_hash, 2)
        except RpcError as exc:
            raise ProviderError(str(exc)) from exc
        found = []
        for tx in block["tx"]:
            for out in tx["vout"]:
                for address in _addresses(out.get("scriptPubKey") or {}):
                    if address in addresses:
                        found.append(ChainTransfer(tx["txid"], int(out["n"]), address, Decimal(out["value"])))
        return _utc(block["time"]), found

    def new_deposit_address(self, order_id, reference):
        try:
            return self._call(self.wallet, "getnewaddress", reference, "bech32"), None
        except RpcError as exc:
            raise ProviderError(str(exc)) from exc

    def balance(self, account):
        """The hot wallet's spendable coins: confirmed, and our own unconfirmed change."""
        try:
            balances = self._call(self.wallet, "getbalances")
        except RpcError as exc:
            raise ProviderError(str(exc)) from exc
        return Decimal(balances["mine"]["trusted"])

    def network_fee_estimate(self):
        # A one-input, two-output segwit payout is about 141 vbytes.
        return (self.fee_rate * 141 * SATOSHI).quantize(SATOSHI)

    # -- payouts --------------------------------------------------------------------------------------------------
    def _sign(self, to_address, amount, replaces=None):
        """-> dict(txid, raw, fee, inputs) for a payout, or for a fee bump of `replaces` (same inputs)."""
        if replaces is None:
            funded = self._call(self.wallet, "walletcreatefundedpsbt", [], [{to_address: format(amount, "f")}], 0,
                                {"lockUnspents": True, "replaceable": True, "fee_rate": format(self.fee_rate, "f")})
            psbt, fee = funded["psbt"], Decimal(funded["fee"])
        else:
            bumped = self._call(self.wallet, "psbtbumpfee", replaces)
            psbt, fee = bumped["psbt"], Decimal(bumped["fee"])
        inputs = [{"txid": i["txid"], "vout": i["vout"]} for i in
                  self._call(self.node, "decodepsbt", psbt)["tx"]["vin"]]
        if fee > self.max_fee:
            if replaces is None:
                self._call(self.wallet, "lockunspent", True, inputs)
            raise _FeeTooHigh("fee %s LTC is above the cap %s" % (fee, self.max_fee))
        processed = self._call(self.wallet, "walletprocesspsbt", psbt, True)
        final = self._call(self.node, "finalizepsbt", processed["psbt"], True)
        if not final.get("complete"):
            raise ProviderError("the wallet could not sign the payout")
        txid = self._call(self.node, "decoderawtransaction", final["hex"])["txid"]
        return {"txid": txid, "raw": final["hex"], "fee": fee, "inputs": inputs}

    def _store_signed(self, key, to_address, amount, signed, replaces=None):
        with self.chain_store.db.transaction() as cur:
            row = self.chain_store.insert_tx(cur, key, self.system, signed["txid"], signed["raw"], to_address,
                                             amount, self.currency, signed["fee"], replaces=replaces)
        if row is None and replaces is None:
            # Another process signed this payout first: its transaction is the payout; ours never leaves here.
            try:
                self._call(self.wallet, "lockunspent", True, signed["inputs"])
            except (RpcError, ProviderError):
                pass
        return row

    def _broadcast(self, tx):
        try:
            self.node.call("sendrawtransaction", tx["raw"])
            self.chain_store.note_broadcast(tx["id"])
            return None
        except RpcError as exc:
            message = exc.message.lower()
            if any(text in message for text in _ALREADY):
                self.chain_store.note_broadcast(tx["id"])
                return None
            self.chain_store.note_broadcast(tx["id"], exc.message[:500])
            if any(text in message for text in _CONFLICT):
                return exc.message  # another version of this payout holds the inputs: looked at by find_payout
            return exc.message
        except RpcUnavailable as exc:
            self.chain_store.note_broadcast(tx["id"], str(exc)[:500])
            raise ProviderError(str(exc)) from exc

    def _sign_and_store(self, idempotency_key, to_account, amount):
        try:
            signed = self._sign(to_account, amount)
        except _FeeTooHigh as exc:
            return PayoutResult(FAILED, None, str(exc), None)
        except RpcError as exc:
            if exc.code in (-5, -4, -6):  # invalid address, wallet error, insufficient funds
                return PayoutResult(FAILED, None, exc.message, None)
            return PayoutResult(UNKNOWN, None, str(exc), None)
        self._store_signed(idempotency_key, to_account, amount, signed)
        return None

    def _tx_state(self, tx):
        """(confirmations, in_mempool): confirmations < 0 means a conflicting transaction is in the chain."""
        try:
            info = self._call(self.wallet, "gettransaction", tx["txid"])
        except RpcError as exc:
            if exc.code == -5:
                return 0, False
            raise
        confirmations = int(info.get("confirmations") or 0)
        in_mempool = False
        if confirmations == 0:
            try:
                self._call(self.node, "getmempoolentry", tx["txid"])
                in_mempool = True
            except RpcError:
                in_mempool = False
        return confirmations, in_mempool

    def _state(self, txs, error=None):
        best, best_tx, pending = 0, None, False
        for tx in txs:
            confirmations, in_mempool = self._tx_state(tx)
            if confirmations > best:
                best, best_tx = confirmations, tx
            pending = pending or in_mempool
            if confirmations >= 0 and confirmations != tx["confirmations"]:
                self.chain_store.note_confirmations(tx["id"], confirmations)
        if best_tx is not None:
            transfer = {"to_account": best_tx["to_address"], "amount": best_tx["amount"],
                        "currency": best_tx["currency"], "confirmations": best}
            if best >= self.confirmations:
                return PayoutResult(SENT, best_tx["txid"], None, transfer)
            return PayoutResult(UNKNOWN, best_tx["txid"], "%d of %d confirmations" % (best, self.confirmations),
                                transfer)
        return PayoutResult(UNKNOWN, txs[-1]["txid"], error or ("in the mempool" if pending else "not seen yet"),
                            None)

    def find_payout(self, idempotency_key):
        """None when nothing was ever signed under the key (so nothing can have been broadcast); otherwise the
        state of its transactions. One that neither the chain nor the mempool has (a reorganisation dropped it, a
        broadcast never arrived) is broadcast again from the same bytes; one waiting past bump_after_seconds is
        replaced by a fee bump of the same inputs."""
        txs = self.chain_store.txs_for_key(idempotency_key)
        if not txs:
            return None
        try:
            result = self._state(txs)
            if result.status == SENT or (result.transfer and result.transfer["confirmations"] > 0):
                return result
            latest = txs[-1]
            confirmations, in_mempool = self._tx_state(latest)
            if not in_mempool:
                error = self._broadcast(latest)
                return self._state(txs, error)
            age = (datetime.datetime.now(datetime.timezone.utc) - latest["created_at"]).total_seconds()
            if age > self.bump_after_seconds:
                try:
                    signed = self._sign(latest["to_address"], latest["amount"], replaces=latest["txid"])
                except (_FeeTooHigh, RpcError) as exc:
                    log.warning("fee bump of %s not made: %s", latest["txid"], exc)
                    return result
                row = self._store_signed(idempotency_key, latest["to_address"], latest["amount"], signed,
                                         replaces=latest["txid"])
                if row is not None:
                    self._broadcast(row)
                    log.warning("payout %s: unconfirmed for %.0f s, replaced by %s (fee %s)", idempotency_key,
                                age, row["txid"], row["fee"])
                return self._state(self.chain_store.txs_for_key(idempotency_key))
            return result
        except RpcError as exc:
            raise ProviderError(str(exc)) from exc

    def close(self):
        self.node.close()
        self.wallet.close()


class _FeeTooHigh(Exception):
    pass
