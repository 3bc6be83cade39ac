"""Payouts, sent at most once, never beyond what the order's payment buys (docs/payments.md).

1. When an order reaches `payout`, the order event's handler inserts the payout row as `sending` with a
   deterministic idempotency key (payout-<installation>-<order>-<attempt>) and commits, in the same transaction
   as the event's inbox record. Only then is the payment system called.
2. The answer decides: SENT -> `sent` + payout_sent; FAILED (a definite refusal, confirmed by looking the key up,
   because a provider may refuse after moving the money) -> `failed` + payout_failed; UNKNOWN (timeout, 5xx,
   crash) -> stays `sending`.
3. The reconciler (a timer, eager at start) takes `sending` payouts whose last call is older than
   RECONCILE_AFTER_SECONDS and looks them up by key: found -> `sent`; definitely not there -> sent again with
   the SAME key (the payment system moves money once per key, so this cannot pay twice).
A new key is made only for a new attempt, and a new attempt only after a definite failure and an operator's
retry (orders: payout_error -> payout). Never while an outcome is unknown.

Crash points for the fault tests: CRASH_AT=before_provider_call | after_provider_call exits the process there.
"""
import logging
from decimal import Decimal

from libs import errors, money
from libs.audit import actor_name
from libs.faults import crash_point
from libs.contracts import events
from services.payments import domain, metrics
from services.payments.adapters import FAILED, SENT, ProviderError
from services.payments.schemas import payout_to_wire

log = logging.getLogger(__name__)


class OrderPayouts:
    """Payouts of orders (table `payouts`), announced as payout_sent / payout_failed."""

    TABLE = "payouts"  # WithdrawalPayouts: the same discipline on its own table

    def __init__(self, store, adapters, reconcile_after_seconds=30.0):
        self.db = store.db
        self.store = store
        self.adapters = adapters
        self.reconcile_after_seconds = float(reconcile_after_seconds)

    # -- 1. the order asks for a payout (inside the event handler's transaction) -----------------------------
    def on_payout_requested(self, cur, order):
        """`order`: the event's snapshot (loaded by libs.contracts.orders.OrderSnapshotSchema), status `payout`.
        Returns the id of a payout to send now, or None."""
        latest = self.store.latest_payout(cur, order["id"])
        if latest is not None:
            if latest["status"] == "sent":
                # Orders asks again for what is done (it cannot normally): say so again rather than pay again.
                self._announce(cur, latest, events.PAYOUT_SENT)
                return None
            if latest["status"] == "sending":
                return None  # in flight or in doubt: the reconciler owns it
            if latest["order_version"] >= order["version"]:
                return None  # an older request, already answered by that failed attempt
        attempt = latest["attempt"] + 1 if latest else 1
        account = self.store.payout_account(cur, order["currency_out"])
        received = self.store.received(cur, order["id"])
        amount = order["amount_out"]
        error = None
        if account is None:
            error = "no payout account for %s" % order["currency_out"]
        elif received <= 0:
            error = "no payment received for this order"
        else:
            limit = domain.payout_limit(received, order["rate_in"], order["rate_out"], order.get("fee") or Decimal(0))
            if amount > limit:
                error = "payout %s %s exceeds what the %s %s received buys at the order's rate (%s)" % (
                    money.to_str(amount), order["currency_out"], money.to_str(received), order["currency_in"],
                    money.to_str(limit.quantize(Decimal("0.000001"))))
        key = domain.payout_key(self.store.key_prefix(), order["id"], attempt)
        row = self.store.insert_payout(cur, order, attempt, key, account, received, error)
        if error:
            # Refused before any money could move: safe to tell orders at once (payout_error for an operator).
            log.warning("payout for order %s refused without calling the provider: %s", order["id"], error)
            metrics.PAYOUTS.labels("refused_locally").inc()
            self._announce(cur, row, events.PAYOUT_FAILED)
            return None
        return row["id"]

    # -- 2. call the payment system ----------------------------------------------------------------------------
    def send(self, payout_id):
        """Call the provider for a committed `sending` payout and record what it said."""
        row = self.store.payout(self.TABLE, payout_id, sending=True)
        if row is None:
            return None
        return self._settle(row, self._call(row), via="send")

    def _call(self, row):
        adapter = self.adapters[row["system"]]
        crash_point("before_provider_call")
        result = adapter.send_payout(row["from_account"], row["to_account"], row["amount"], row["currency"],
                                     row["idempotency_key"], row["reference"])
        crash_point("after_provider_call")
        metrics.PAYOUTS.labels(result.status).inc()
        log.info("payout %s (%s): %s %s", row["id"], row["idempotency_key"], result.status, result.error or "")
        return result

    def _settle(self, row, result, via):
        if result.status == SENT:
            mismatch = self._mismatch(row, result.transfer)
            if mismatch:
                # Our key, someone else's transfer: neither sent nor failed for sure. Stays sending, loudly.
                log.error("payout %s: the provider's transfer under our key differs (%s)", row["id"], mismatch)
                return self._note(row, "provider has a different transfer under this key: %s" % mismatch)
            return self._finish(row, "sent", provider_id=result.provider_id)
        if result.status == FAILED:
            # A refusal is final only if the key is really unknown to the provider (some refuse after paying).
            try:
                found = self.adapters[row["system"]].find_payout(row["idempotency_key"])
            except ProviderError as exc:
                return self._note(row, "refused (%s), but the lookup failed (%s): checking again later" % (
                    result.error, exc))
            if found is not None:
                return self._settle(row, found, via=via)
            return self._finish(row, "failed", error=result.error)
        return self._note(row, "outcome unknown (%s): the reconciler will look it up" % result.error)

    @staticmethod
    def _mismatch(row, transfer):
        if not transfer:
            return None
        problems = []
        if transfer.get("to_account") not in (None, row["to_account"]):
            problems.append("to %s" % transfer.get("to_account"))
        if transfer.get("amount") is not None and Decimal(str(transfer["amount"])) != row["amount"]:
            problems.append("amount %s" % transfer.get("amount"))
        if transfer.get("currency") not in (None, row["currency"]):
            problems.append("currency %s" % transfer.get("currency"))
        return ", ".join(problems) or None

    def _finish(self, row, status, provider_id=None, error=None, resolved_by=None):
        with self.db.transaction() as cur:
            done = self.store.finish_payout(cur, self.TABLE, row["id"], status, provider_id, error, resolved_by)
            if done is None:
                return self.store.payout(self.TABLE, row["id"])  # done elsewhere
            self._announce(cur, done, events.PAYOUT_SENT if status == "sent" else events.PAYOUT_FAILED)
            return done

    def _note(self, row, error):
        return self.store.note_payout(self.TABLE, row["id"], error) or row

    def _announce(self, cur, row, event_type):
        wire = payout_to_wire(row)
        self.store.event(cur, event_type, {"payout": wire, "order_id": row["order_id"], "error": row["error"]},
                         aggregate_id=row["order_id"])

    # -- 3. the reconciler ---------------------------------------------------------------------------------------
    def reconcile(self, limit=50):
        """Resolve payouts in doubt; returns {payout_id: outcome}."""
        rows = self.store.payouts_in_doubt(self.TABLE, self.reconcile_after_seconds, limit)
        outcomes = {}
        for row in rows:
            try:
                outcomes[row["id"]] = self._reconcile_one(row)
            except Exception:  # noqa: BLE001 - one payout's trouble must not stop the others
                log.exception("reconciling payout %s failed", row["id"])
                outcomes[row["id"]] = "error"
        return outcomes

    def _reconcile_one(self, row):
        adapter = self.adapters[row["system"]]
        try:
            found = adapter.find_payout(row["idempotency_key"])
        except ProviderError as exc:
            self.store.count_check(self.TABLE, row["id"], error="lookup failed: %s" % exc)
            metrics.RECONCILED.labels("lookup_failed").inc()
            return "lookup_failed"
        self.store.count_check(self.TABLE, row["id"])
        if found is not None:
            metrics.RECONCILED.labels("found").inc()
            done = self._settle(row, found, via="reconcile")
            return "found_" + done["status"]
        # Definitely not at the provider (the last call is older than any call's timeout): send again, same key.
        # The claim (a compare-and-set on attempted_at) keeps two reconcilers from sending at the same moment.
        claimed = self.store.claim_resend(self.TABLE, row["id"], self.reconcile_after_seconds)
        if claimed is None:
            return "claimed_elsewhere"
        metrics.RECONCILED.labels("resent").inc()
        done = self._settle(claimed, self._call(claimed), via="reconcile")
        return "resent_" + done["status"]

    # -- operators -------------------------------------------------------------------------------------------------
    def resolve(self, payout_id, outcome, note, actor):
        """An admin settles a payout the reconciler cannot (only an operator forces `failed`, after checking by
        hand). A payout the payment system does have can never be forced to failed."""
        if outcome not in ("sent", "failed"):
            raise errors.ValidationFailed("outcome must be sent or failed", {"outcome": ["sent or failed"]})
        row = self.store.payout(self.TABLE, payout_id)
        if row is None:
            raise errors.NotFound("payout not found")
        refused = None
        if row["status"] != "sending":
            refused = "payout is %s, not sending" % row["status"]
        elif outcome == "failed":
            try:
                if self.adapters[row["system"]].find_payout(row["idempotency_key"]) is not None:
                    refused = "the payment system has this payout: it was sent"
            except ProviderError:
                pass  # the provider cannot tell; the operator has checked by hand
        name = actor_name(actor)
        with self.db.transaction() as cur:
            self.store.audit(cur, actor, "resolve_payout", payout_id=payout_id, order_id=row["order_id"],
                              outcome="rejected" if refused else "ok",
                              detail={"outcome": outcome, "note": note, "reason": refused})
        if refused:
            raise errors.Conflict(refused, {"status": [row["status"]]})
        done = self._finish(row, outcome, error=None if outcome == "sent" else "failed by %s: %s" % (name, note),
                            resolved_by=name)
        return payout_to_wire(done)


class WithdrawalPayouts(OrderPayouts):
    """Payouts of partner withdrawals (orders' `partner_payout_requested`, docs/partners.md): the same steps as an
    order's payout (commit `sending` with the event's key, call, settle; the reconciler by key) on the table
    `withdrawal_payouts`, announced as withdrawal_payout_sent / withdrawal_payout_failed."""

    TABLE = "withdrawal_payouts"

    def on_requested(self, cur, request):
        """`request`: libs.contracts.payments.PartnerPayoutRequestedSchema data (inside the handler's transaction,
        after the inbox claim). Returns the id of a payout to send now, or None."""
        account = self.store.payout_account(cur, request["currency"])
        error = None if account is not None else "no payout account for %s" % request["currency"]
        row = self.store.insert_withdrawal_payout(cur, request, account, error)
        if row is None:
            # Asked again (a redelivery, a replayed outbox row): never a second payout; repeat a final answer.
            existing = self.store.withdrawal_payout(cur, request["withdrawal_id"])
            if existing is None:
                log.error("withdrawal %s: idempotency key %s belongs to another withdrawal; nothing sent",
                          request["withdrawal_id"], request["idempotency_key"])
            elif existing["status"] != "sending":
                self._announce(cur, existing, events.WITHDRAWAL_PAYOUT_SENT if existing["status"] == "sent"
                               else events.WITHDRAWAL_PAYOUT_FAILED)
            return None
        if error:
            log.warning("payout of withdrawal %s refused without calling the provider: %s",
                        request["withdrawal_id"], error)
            metrics.PAYOUTS.labels("refused_locally").inc()
            self._announce(cur, row, events.WITHDRAWAL_PAYOUT_FAILED)
            return None
        return row["id"]

    def _announce(self, cur, row, event_type):
        if event_type == events.PAYOUT_SENT:
            event_type = events.WITHDRAWAL_PAYOUT_SENT
        elif event_type == events.PAYOUT_FAILED:
            event_type = events.WITHDRAWAL_PAYOUT_FAILED
        self.store.event(cur, event_type, {
            "withdrawal_id": row["withdrawal_id"], "idempotency_key": row["idempotency_key"],
            "amount": money.to_str(row["amount"]), "currency": row["currency"], "to_account": row["to_account"],
            "provider_id": row["provider_id"], "error": row["error"]},
            aggregate_id="withdrawal:%s" % row["withdrawal_id"])

    def resolve(self, payout_id, outcome, note, actor):
        raise errors.ValidationFailed("withdrawal payouts are not resolved here", {})
