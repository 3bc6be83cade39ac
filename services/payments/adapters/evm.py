"""USDT-like ERC-20 tokens on an EVM chain (anvil locally), over JSON-RPC; transactions signed here with eth-account
(docs/chains.md, "EVM").

    PAYMENT_SYSTEMS:
      evm:
        adapter: evm
        currency: USDT
        rpc_url: http://127.0.0.1:8545        # unset: http://127.0.0.1:$EVM_RPC_PORT
        keys_file_env: EVM_KEYS_FILE           # a JSON file {hot: <private key>, hd_mnemonic: <words>}
        token_env: EVM_TOKEN_ADDRESS           # the token's contract address, or
        token_file_env: EVM_TOKEN_FILE         # a file holding it (written by the chains process)
        decimals: 6
        confirmations: 3
        gas_limit: 100000
        max_fee_gwei: 200                      # cap: a payout costlier than this per gas is refused
        bump_after_seconds: 600                # unconfirmed this long: the same nonce again, 25 % more per gas

Deposits: per-order addresses derived from the HD seed (m/44'/60'/0'/0/<order id>): `Transfer` logs of the token by
block, filtered on our addresses. Payouts: from the hot key; the nonce is taken under the `chain_nonces` row lock in
the transaction that commits the signed bytes, so two payouts never share or skip one.
"""
import datetime
import json
import logging
import os
from decimal import Decimal

from libs.jsonrpc import JsonRpc, RpcError, RpcUnavailable
from services.payments.adapters.base import (FAILED, SENT, UNKNOWN, ChainAdapter, ChainTransfer, PayoutResult,
                                             ProviderError)

log = logging.getLogger(__name__)

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TRANSFER_SELECTOR = "a9059cbb"       # transfer(address,uint256)
BALANCE_SELECTOR = "70a08231"        # balanceOf(address)
_ALREADY = ("already known", "already imported", "nonce too low", "known transaction")
GWEI = 10 ** 9


def _utc(ts):
    return datetime.datetime.fromtimestamp(int(ts, 16), tz=datetime.timezone.utc)


def _address_word(address):
    return address.lower().replace("0x", "").rjust(64, "0")


class Adapter(ChainAdapter):
    name = "evm"

    def __init__(self, system, settings, environ=None):
        super().__init__(system, settings, environ)
        environ = os.environ if environ is None else environ
        self.environ = environ
        self.currency = self.currency or "USDT"
        url = self.settings.get("rpc_url") or "http://127.0.0.1:%s" % environ.get("EVM_RPC_PORT", "8545")
        self.timeout = float(self.settings.get("timeout") or 3)
        self.connect_timeout = min(1.0, self.timeout)
        self.node = JsonRpc(url, timeout=self.timeout, connect_timeout=self.connect_timeout, version="2.0")
        self.decimals = int(self.settings.get("decimals") or 6)
        self.unit = Decimal(10) ** self.decimals
        self.gas_limit = int(self.settings.get("gas_limit") or 100000)
        self.max_fee_gwei = Decimal(str(self.settings.get("max_fee_gwei") or 200))
        bump_after = self.settings.get("bump_after_seconds")
        self.bump_after_seconds = float(600 if bump_after in (None, "") else bump_after)
        self._keys = None

    # -- keys: only from the environment or a file it names ------------------------------------------------------
    def _key_material(self):
        if self._keys is None:
            path = self.environ.get(self.settings.get("keys_file_env") or "EVM_KEYS_FILE")
            if not path:
                raise ProviderError("no keys: set %s" % (self.settings.get("keys_file_env") or "EVM_KEYS_FILE"))
            try:
                with open(path) as fh:
                    self._keys = json.load(fh)
            except OSError as exc:
                raise ProviderError("keys file %s: %s" % (path, exc)) from exc
        return self._keys

    @property
    def token(self):
        """The token's address: EVM_TOKEN_ADDRESS, or the file EVM_TOKEN_FILE names (the chains process writes it
        when it deploys the demo token)."""
        address = self.settings.get("token") or self.environ.get(self.settings.get("token_env") or
                                                                 "EVM_TOKEN_ADDRESS")
        path = self.environ.get(self.settings.get("token_file_env") or "EVM_TOKEN_FILE")
        if not address and path and os.path.exists(path):
            with open(path) as fh:
                address = fh.read().strip()
        if not address:
            raise ProviderError("no token address yet: set EVM_TOKEN_ADDRESS or EVM_TOKEN_FILE")
        return address.lower()

    def _hot(self):
        from eth_account import Account
        return Account.from_key(self._key_material()["hot"])

    def _call(self, method, *params):
        try:
            return self.node.call(method, *params)
        except RpcUnavailable as exc:
            raise ProviderError(str(exc)) from exc

    # -- reading the chain -------------------------------------------------------------------------------------
    def tip_height(self):
        return int(self._call("eth_blockNumber"), 16)

    def block_hash(self, height):
        block = self._call("eth_getBlockByNumber", hex(int(height)), False)
        return block["hash"] if block else None

    def block_transfers(self, height, block_hash, addresses):
        block = self._call("eth_getBlockByHash", block_hash, False)
        if block is None:
            raise ProviderError("block %s is gone" % block_hash)
        logs = self._call("eth_getLogs", {"blockHash": block_hash, "address": self.token,
                                          "topics": [TRANSFER_TOPIC]})
        found = []
        for entry in logs:
            if entry.get("removed"):
                continue
            to = "0x" + entry["topics"][2][-40:]
            if to in addresses:
                amount = Decimal(int(entry["data"], 16)) / self.unit
                found.append(ChainTransfer(entry["transactionHash"], int(entry["logIndex"], 16), to, amount))
        return _utc(block["timestamp"]), found

    def new_deposit_address(self, order_id, reference):
        from eth_account import Account
        Account.enable_unaudited_hdwallet_features()
        path = "m/44'/60'/0'/0/%d" % int(order_id)
        account = Account.from_mnemonic(self._key_material()["hd_mnemonic"], account_path=path)
        return account.address.lower(), path

    def balance(self, account):
        data = "0x" + BALANCE_SELECTOR + _address_word(self._hot().address)
        return Decimal(int(self._call("eth_call", {"to": self.token, "data": data}, "latest"), 16)) / self.unit

    def network_fee_estimate(self):
        try:
            price = int(self._call("eth_gasPrice"), 16)
        except (ProviderError, RpcError):
            return None
        return Decimal(price * self.gas_limit) / Decimal(10 ** 18)

    # -- payouts --------------------------------------------------------------------------------------------------
    def _sign(self, hot, to_address, amount, nonce, max_fee, tip):
        units = amount * self.unit
        if units != units.to_integral_value():
            raise ValueError("%s has more than %d decimals" % (amount, self.decimals))
        data = "0x" + TRANSFER_SELECTOR + _address_word(to_address) + format(int(units), "064x")
        tx = {"to": self.token, "data": data, "value": 0, "gas": self.gas_limit, "maxFeePerGas": int(max_fee),
              "maxPriorityFeePerGas": int(tip), "nonce": int(nonce), "chainId": self._chain_id, "type": 2}
        from eth_utils import to_checksum_address
        tx["to"] = to_checksum_address(tx["to"])
        signed = hot.sign_transaction(tx)
        raw = signed.raw_transaction.hex()
        txid = signed.hash.hex()
        return ("0x" + raw if not raw.startswith("0x") else raw), ("0x" + txid if not txid.startswith("0x") else txid)

    def _fees(self):
        base = int(self._call("eth_gasPrice"), 16)
        tip = min(base, GWEI)
        max_fee = base * 2 + tip
        return max_fee, tip

    def _sign_and_store(self, idempotency_key, to_account, amount):
        try:
            from eth_utils import is_address
            if not is_address(to_account):
                return PayoutResult(FAILED, None, "%r is not an address" % to_account, None)
            hot = self._hot()
            self._chain_id = int(self._call("eth_chainId"), 16)
            max_fee, tip = self._fees()
            if Decimal(max_fee) > self.max_fee_gwei * GWEI:
                return PayoutResult(FAILED, None, "fee %s gwei per gas is above the cap %s" % (
                    Decimal(max_fee) / GWEI, self.max_fee_gwei), None)
            chain_nonce = int(self._call("eth_getTransactionCount", hot.address, "pending"), 16)
            with self.chain_store.db.transaction() as cur:
                nonce = self.chain_store.take_nonce(cur, self.system, hot.address.lower(), chain_nonce)
                raw, txid = self._sign(hot, to_account, amount, nonce, max_fee, tip)
                row = self.chain_store.insert_tx(
                    cur, idempotency_key, self.system, txid, raw, to_account, amount, self.currency,
                    Decimal(max_fee * self.gas_limit) / Decimal(10 ** 18), nonce=nonce)
                if row is None:
                    # Another process signed this payout first: give the nonce back (our transaction
                    # rolls back), use theirs.
                    cur.connection.rollback()
        except ValueError as exc:
            return PayoutResult(FAILED, None, str(exc), None)
        return None

    def _broadcast(self, tx):
        try:
            self.node.call("eth_sendRawTransaction", tx["raw"])
            self.chain_store.note_broadcast(tx["id"])
            return None
        except RpcError as exc:
            if any(text in exc.message.lower() for text in _ALREADY):
                self.chain_store.note_broadcast(tx["id"])
                return None
            self.chain_store.note_broadcast(tx["id"], exc.message[:500])
            return exc.message
        except RpcUnavailable as exc:
            self.chain_store.note_broadcast(tx["id"], str(exc)[:500])
            raise ProviderError(str(exc)) from exc

    def _tx_state(self, tx, tip):
        """(confirmations, pending, reverted)."""
        receipt = self._call("eth_getTransactionReceipt", tx["txid"])
        if receipt and receipt.get("blockNumber"):
            confirmations = tip - int(receipt["blockNumber"], 16) + 1
            return confirmations, False, receipt.get("status") == "0x0"
        pending = self._call("eth_getTransactionByHash", tx["txid"]) is not None
        return 0, pending, False

    def _state(self, txs, error=None):
        tip = self.tip_height()
        best, best_tx, pending = 0, None, False
        for tx in txs:
            confirmations, in_pool, reverted = self._tx_state(tx, tip)
            if reverted and confirmations >= self.confirmations:
                return PayoutResult(FAILED, tx["txid"], "the transfer reverted on chain", None)
            if confirmations > best:
                best, best_tx = confirmations, tx
            pending = pending or in_pool
            if confirmations != tx["confirmations"]:
                self.chain_store.note_confirmations(tx["id"], confirmations)
        if best_tx is not None:
            transfer = {"to_account": best_tx["to_address"], "amount": best_tx["amount"],
                        "currency": best_tx["currency"], "confirmations": best}
            if best >= self.confirmations:
                return PayoutResult(SENT, best_tx["txid"], None, transfer)
            return PayoutResult(UNKNOWN, best_tx["txid"], "%d of %d confirmations" % (best, self.confirmations),
                                transfer)
        return PayoutResult(UNKNOWN, txs[-1]["txid"], error or ("pending" if pending else "not seen yet"), None)

    def find_payout(self, idempotency_key):
        """As Litecoin's (docs/chains.md): None when nothing was signed; a transaction the node has nowhere is
        broadcast again from its bytes; one pending past bump_after_seconds is replaced by the same nonce with
        25 % more per gas (committed first)."""
        txs = self.chain_store.txs_for_key(idempotency_key)
        if not txs:
            return None
        try:
            result = self._state(txs)
            if result.status in (SENT, FAILED) or (result.transfer and result.transfer["confirmations"] > 0):
                return result
            latest = txs[-1]
            _, pending, _ = self._tx_state(latest, self.tip_height())
            if not pending:
                return self._state(txs, self._broadcast(latest))
            age = (datetime.datetime.now(datetime.timezone.utc) - latest["created_at"]).total_seconds()
            if age > self.bump_after_seconds:
                self._bump(idempotency_key, latest)
                return self._state(self.chain_store.txs_for_key(idempotency_key))
            return result
        except RpcError as exc:
            raise ProviderError(str(exc)) from exc

    def _bump(self, key, latest):
        hot = self._hot()
        self._chain_id = int(self._call("eth_chainId"), 16)
        old_max = int(latest["fee"] * Decimal(10 ** 18) / self.gas_limit)
        max_fee = max(old_max * 125 // 100 + 1, self._fees()[0])
        if Decimal(max_fee) > self.max_fee_gwei * GWEI:
            log.warning("fee bump of %s not made: %s gwei per gas is above the cap", latest["txid"],
                        Decimal(max_fee) / GWEI)
            return
        tip = max(GWEI, max_fee // 10)
        raw, txid = self._sign(hot, latest["to_address"], latest["amount"], latest["nonce"], max_fee, tip)
        with self.chain_store.db.transaction() as cur:
            row = self.chain_store.insert_tx(cur, key, self.system, txid, raw, latest["to_address"],
                                             latest["amount"], self.currency,
                                             Decimal(max_fee * self.gas_limit) / Decimal(10 ** 18),
                                             nonce=latest["nonce"], replaces=latest["txid"])
        if row is not None:
            self._broadcast(row)
            log.warning("payout %s: replaced %s by %s (same nonce %s, %s gwei per gas)", key, latest["txid"], txid,
                        latest["nonce"], Decimal(max_fee) / GWEI)

    def close(self):
        self.node.close()
