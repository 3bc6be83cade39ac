"""The one interface every payment system adapter implements (docs/payments.md, "Adding a real payment system").

An adapter turns a payment system's API into four calls and three kinds of answer. It keeps no state of its own:
cursors, payments and payouts live in the payments schema. Write a new payment system as a new module here with
a class `Adapter(PaymentSystemAdapter)`, then name it in config.yml (PAYMENT_SYSTEMS) — nothing else changes.

Outcomes of a payout call, and why three: a payout that surely did not happen may be retried by an operator with
a new key; one that surely happened is done; anything in between (timeout, 5xx, connection reset) is UNKNOWN and
must be looked up by its key later, never sent again under a new key (that could pay twice).
"""
import collections

from libs.faults import crash_point
from libs.jsonrpc import RpcError

SENT = "sent"
FAILED = "failed"
UNKNOWN = "unknown"

# One entry of an account's history. direction 'in' is an incoming payment; 'out' entries (our payouts) only
# move the cursor and tell the poller the balance changed.
Entry = collections.namedtuple(
    "Entry", "external_id direction amount currency reference counterparty occurred_at cursor")

# A page of history: entries after the cursor asked for, the cursor to ask for next, whether more is waiting.
Page = collections.namedtuple("Page", "entries next_cursor has_more")

# What a payout call or lookup found: status SENT/FAILED/UNKNOWN, the provider's id, the error text, and the
# transfer as the provider has it (to check it is ours: same recipient, amount, currency).
PayoutResult = collections.namedtuple("PayoutResult", "status provider_id error transfer")


class ProviderError(Exception):
    """The payment system did not give a usable answer (timeout, 5xx, connection refused, garbage).
    For reads: try again later. For a payout: the outcome is UNKNOWN."""


class PaymentSystemAdapter:
    """Base class. `settings` is the system's block from PAYMENT_SYSTEMS; secrets come from the environment
    (settings name the variable, e.g. api_key_env: SANDBOX_API_KEY), never from files in the repository."""

    name = "base"

    def __init__(self, system, settings, environ=None):
        self.system = system
        self.settings = dict(settings or {})
        self.environ = environ

    def list_incoming(self, account, cursor, limit=500):
        """History of `account` after `cursor` (None: from the beginning), oldest first -> Page."""
        raise NotImplementedError

    def balance(self, account):
        """The account's balance -> Decimal."""
        raise NotImplementedError

    def send_payout(self, from_account, to_account, amount, currency, idempotency_key, reference):
        """Send money once per idempotency key -> PayoutResult (SENT, FAILED or UNKNOWN). Never raises for a
        provider failure: an exception here would leave the caller unsure, which UNKNOWN already says."""
        raise NotImplementedError

    def find_payout(self, idempotency_key):
        """Look a payout up by its key -> None if the provider definitely has no transfer under it; else a
        PayoutResult read from the transfer's state: SENT (the money moved), FAILED (the transfer definitely did
        not and will not move it), UNKNOWN (pending, or a state the adapter cannot read: look again later).
        Raises ProviderError when it cannot tell."""
        raise NotImplementedError

    def close(self):
        pass


# One transfer to one of our deposit addresses found in a block: the transaction, the output (Litecoin: vout;
# EVM: log index), the address, the amount in the currency.
ChainTransfer = collections.namedtuple("ChainTransfer", "txid index address amount")


class ChainAdapter(PaymentSystemAdapter):
    """A chain rail (docs/chains.md). Instead of `list_incoming` the poller's chain follower (chains.py) reads
    blocks by height and hash; payouts are signed first, committed with their hash and raw bytes (the bound
    ChainStore), and only then broadcast, so a crash anywhere is recovered by broadcasting the same bytes.

    Settings common to chains: `confirmations` (the depth at which a deposit is credited and a payout completed),
    `currency`."""

    follows_chain = True

    def __init__(self, system, settings, environ=None):
        super().__init__(system, settings, environ)
        self.confirmations = max(1, int(self.settings.get("confirmations") or 3))
        self.currency = self.settings.get("currency")
        self.chain_store = None

    def bind(self, chain_store):
        """The store of signed transactions and deposit addresses (payments.chain_*), given at wiring time."""
        self.chain_store = chain_store

    def list_incoming(self, account, cursor, limit=500):
        raise ProviderError("a chain is followed by blocks (services/payments/chains.py), not by history pages")

    # -- reading the chain -------------------------------------------------------------------------------------
    def tip_height(self):
        raise NotImplementedError

    def block_hash(self, height):
        """The hash of the block at `height` on the node's best chain (None above the tip)."""
        raise NotImplementedError

    def block_transfers(self, height, block_hash, addresses):
        """(block time, [ChainTransfer]) of the transfers in the block to any of `addresses`."""
        raise NotImplementedError

    def new_deposit_address(self, order_id, reference):
        """(address, derivation) for an order's deposits."""
        raise NotImplementedError

    def network_fee_estimate(self):
        """What one payout costs in network fees now (the chain's coin), for quotes and statistics."""
        return None

    # -- paying out at most once -------------------------------------------------------------------------------
    def send_payout(self, from_account, to_account, amount, currency, idempotency_key, reference):
        """Sign and commit once per key, then broadcast what is committed: a retry after a crash at any point
        sends the same bytes (the same transaction cannot pay twice), never a second payment."""
        try:
            txs = self.chain_store.txs_for_key(idempotency_key)
            if not txs:
                refused = self._sign_and_store(idempotency_key, to_account, amount)
                if refused is not None:
                    return refused
                crash_point("after_sign")
                txs = self.chain_store.txs_for_key(idempotency_key)
            error = self._broadcast(txs[-1])
            return self._state(txs, error)
        except (ProviderError, RpcError) as exc:
            return PayoutResult(UNKNOWN, None, str(exc), None)

    def _sign_and_store(self, idempotency_key, to_account, amount):
        """Build and sign the payout's transaction and commit it under the key (ChainStore); a PayoutResult if
        the rail refuses it (a bad address, a fee above the cap), else None."""
        raise NotImplementedError

    def _broadcast(self, tx):
        """Send a committed transaction's bytes to the node; an error text or None."""
        raise NotImplementedError

    def _state(self, txs, error=None):
        """The PayoutResult of a key's transactions as the chain sees them now."""
        raise NotImplementedError
