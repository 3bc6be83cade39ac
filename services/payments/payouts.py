"""Payouts, sent at most once, never beyond what the order's payment buys (docs/payments.md).

1. When an order reaches `payout`, the order event's handler inserts the payout row as `sending` with a
   deterministic idempotency key (payout-<installation>-<order>-<attempt>) and commits, in the same transaction
   as the event's inbox record. Only then is the payment system called.
2. The answer decides: SENT -> `sent` + payout_sent; FAILED (a definite refusal, confirmed by looking the key up,
   because a provider may refuse after moving the money) -> `failed` + payout_failed; UNKNOWN (timeout, 5xx,
   crash) -> stays `sending`.
3. The reconciler (a timer, eager at start) takes `sending` payouts whose last call is older than
   RECONCILE_AFTER_SECONDS and looks them up by key: found -> what the transfer's state says (completed: `sent`,
   failed: `failed`, pending: look again later); definitely not there -> sent again with the SAME key (the
   payment system moves money once per key, so this cannot pay twice).
4. An operator's resolve follows the reconciler's rules: the provider is asked by key first, and the operator's
   word is taken only past the reconciler's reach, by a compare-and-set on the last call. A call that answers
   `sent` after its payout was resolved `failed` is recorded (late_success) and announced
   (payout_succeeded_after_resolve), never dropped.
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
from services.payments.schemas import payout_to_wire, withdrawal_payout_to_wire

log = logging.getLogger(__name__)


class OrderPayouts:
    """Payouts of orders (table `payouts`), announced as payout_sent / payout_failed."""

    TABLE = "payouts"  # WithdrawalPayouts: the same discipline on its own table
    KIND = "order"

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

    def _settle(self, row, result, via, looked_up=False):
        """Record what the provider said of a payout we read as `sending`. `looked_up`: `result` is what the
        lookup by key found (so a FAILED there is the provider's own record, not a refusal to confirm)."""
        if result.status == SENT:
            mismatch = self._mismatch(row, result.transfer)
            if mismatch:
                # Our key, someone else's transfer: neither sent nor failed for sure. Stays sending, loudly.
                log.error("payout %s: the provider's transfer under our key differs (%s)", row["id"], mismatch)
                return self._note(row, "provider has a different transfer under this key: %s" % mismatch)
            return self._finish(row, "sent", provider_id=result.provider_id)
        if result.status == FAILED:
            if looked_up:
                # The provider has a transfer under our key and says it failed: nothing moved, nothing will.
                return self._finish(row, "failed", provider_id=result.provider_id, error=result.error)
            # A refusal is final only if the key is really unknown to the provider (some refuse after paying).
            try:
                found = self.adapters[row["system"]].find_payout(row["idempotency_key"])
            except ProviderError as exc:
                return self._note(row, "refused (%s), but the lookup failed (%s): checking again later" % (
                    result.error, exc))
            if found is not None:
                return self._settle(row, found, via=via, looked_up=True)
            return self._finish(row, "failed", error=result.error)
        if looked_up:
            return self._note(row, "the provider has it, not final (%s): looking again later" % result.error)
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
        late = None
        with self.db.transaction() as cur:
            done = self.store.finish_payout(cur, self.TABLE, row["id"], status, provider_id, error, resolved_by)
            if done is not None:
                self._announce(cur, done, events.PAYOUT_SENT if status == "sent" else events.PAYOUT_FAILED)
                return done
            if status == "sent":
                # Settled meanwhile: if an operator resolved it failed, this success came too late for the
                # status. Recorded and announced, never dropped (docs/payments.md, "Resolving a payout by hand").
                late = self.store.record_late_success(cur, self.TABLE, row["id"], provider_id)
                if late is not None:
                    self._announce_late_success(cur, late)
        if late is not None:
            metrics.LATE_SUCCESS.labels(self.KIND).inc()
            log.error("%s payout %s (%s) was resolved failed by %s, and the provider has now reported it SENT "
                      "(transfer %s): the money went out; do not pay it again", self.KIND, late["id"],
                      late["idempotency_key"], late["resolved_by"], late["provider_id"])
            return late
        return self.store.payout(self.TABLE, row["id"])  # done elsewhere

    def _note(self, row, error):
        return self.store.note_payout(self.TABLE, row["id"], error) or row

    def _announce(self, cur, row, event_type):
        wire = payout_to_wire(row)
        self.store.event(cur, event_type, {"payout": wire, "order_id": row["order_id"], "error": row["error"]},
                         aggregate_id=row["order_id"])

    def _late_success_event(self, row):
        return {"order_id": row["order_id"], "payout": payout_to_wire(row)}, row["order_id"]

    def _announce_late_success(self, cur, row):
        data, aggregate_id = self._late_success_event(row)
        data.update(kind=self.KIND, payout_id=row["id"], idempotency_key=row["idempotency_key"],
                    amount=money.to_str(row["amount"]), currency=row["currency"], to_account=row["to_account"],
                    provider_id=row["provider_id"], resolved_by=row["resolved_by"])
        self.store.event(cur, events.PAYOUT_SUCCEEDED_AFTER_RESOLVE, data, aggregate_id=aggregate_id)

    # -- 3. the reconciler ---------------------------------------------------------------------------------------
    def reconcile(self, limit=50):
        """Resolve payouts in doubt; returns {payout_id: outcome}."""
        rows = self.store.payouts_in_doubt(self.TABLE, self.reconcile_after_seconds, limit)
        outcomes = {}
        for row in rows:
            try:
                outcomes[row["id"]] = self.reconcile_one(row)
            except Exception:  # noqa: BLE001 - one payout's trouble must not stop the others
                log.exception("reconciling payout %s failed", row["id"])
                outcomes[row["id"]] = "error"
        return outcomes

    def reconcile_one(self, row):
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
            done = self._settle(row, found, via="reconcile", looked_up=True)
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
        """An admin settles a payout the reconciler cannot, by the reconciler's rules (docs/payments.md,
        "Resolving a payout by hand"):
        1. the provider is asked by key first: what it has decides, whatever the operator asked (a transfer it
           completed is `sent`; one it failed is `failed`; one still pending is refused for now);
        2. otherwise the operator's word is recorded only once no call can be in flight (the last call is older
           than the reconciler's reach) and by a compare-and-set on that call (a resend meanwhile wins).
        Refusals are Conflict errors; every answer is audited."""
        if outcome not in ("sent", "failed"):
            raise errors.ValidationFailed("outcome must be sent or failed", {"outcome": ["sent or failed"]})
        row = self.store.payout(self.TABLE, payout_id)
        if row is None:
            raise errors.NotFound("payout not found")
        name = actor_name(actor)
        if row["status"] != "sending":
            same = row["status"] == outcome
            with self.db.transaction() as cur:
                self._audit_resolve(cur, actor, row, outcome, note, None if same else "payout is %s" % row["status"])
            if same:
                return self._to_wire(row)  # asked again, or the provider's answer got there first
            raise errors.Conflict("payout is %s, not sending" % row["status"], {"status": [row["status"]]})
        try:
            found = self.adapters[row["system"]].find_payout(row["idempotency_key"])
        except ProviderError as exc:
            log.warning("resolving payout %s: the lookup failed (%s); the operator has checked by hand",
                        row["id"], exc)
            found = None  # the provider cannot tell: the operator's check stands, under the same guard
        if found is not None:
            return self._resolve_as_provider_has_it(row, found, outcome, note, actor, name)
        error = None if outcome == "sent" else ("failed by %s: %s" % (name, note))[:1000]
        refused = None
        with self.db.transaction() as cur:
            done = self.store.claim_resolve(cur, self.TABLE, row["id"], row["attempted_at"],
                                            self.reconcile_after_seconds, outcome, error, name)
            if done is None:
                refused = self._claim_refusal(row)
            else:
                self._announce(cur, done, events.PAYOUT_SENT if outcome == "sent" else events.PAYOUT_FAILED)
            self._audit_resolve(cur, actor, row, outcome, note, refused)
        if refused:
            raise errors.Conflict(refused, {"status": ["sending"]})
        return self._to_wire(done)

    def _resolve_as_provider_has_it(self, row, found, outcome, note, actor, name):
        refused = None
        if found.status == SENT and not self._mismatch(row, found.transfer):
            status = "sent"
            if outcome != "sent":
                refused = "the payment system has this payout: it was sent (recorded as sent)"
        elif found.status == FAILED:
            status = "failed"
            if outcome != "failed":
                refused = "the payment system has this payout as failed (%s): recorded as failed" % found.error
        else:
            status = None
            refused = ("the payment system has a transfer under this key that is not final or not this "
                       "payout's (%s): not resolved" % (found.error or self._mismatch(row, found.transfer)))
        done = None
        with self.db.transaction() as cur:
            if status is not None:
                error = None if status == "sent" else "failed at the payment system: %s" % found.error
                done = self.store.finish_payout(cur, self.TABLE, row["id"], status, found.provider_id, error, name)
                if done is not None:
                    self._announce(cur, done, events.PAYOUT_SENT if status == "sent" else events.PAYOUT_FAILED)
                elif not refused:
                    refused = self._claim_refusal(row)
            self._audit_resolve(cur, actor, row, outcome, note, refused, provider_id=found.provider_id)
        if refused:
            raise errors.Conflict(refused, {"status": [done["status"] if done else row["status"]]})
        return self._to_wire(done)

    def _claim_refusal(self, row):
        """Why the claim on `row` (read as sending) did not take."""
        now = self.store.payout(self.TABLE, row["id"])
        if now["status"] != "sending":
            return "payout is %s now, not sending" % now["status"]
        if now["attempted_at"] != row["attempted_at"]:
            return "the payout was sent again meanwhile (same key): look again after it settles"
        return ("a provider call may still be in flight (the last one is younger than %s s, the reconciler's "
                "reach): resolve it after that, or let the reconciler look it up" % self.reconcile_after_seconds)

    AUDIT_ACTION = "resolve_payout"

    def _audit_resolve(self, cur, actor, row, outcome, note, refused, provider_id=None):
        """Every resolve is audited, a refusal too (in the transaction that commits before it is raised)."""
        detail = {"outcome": outcome, "note": note, "reason": refused}
        if provider_id:
            detail["provider_id"] = provider_id
        self.store.audit(cur, actor, self.AUDIT_ACTION, payout_id=row["id"], order_id=row.get("order_id"),
                         outcome="rejected" if refused else "ok", detail=dict(detail, **self._audit_ids(row)))

    @staticmethod
    def _audit_ids(row):
        return {}

    @staticmethod
    def _to_wire(row):
        return payout_to_wire(row)


class WithdrawalPayouts(OrderPayouts):
    """Payouts of partner withdrawals (orders' `partner_payout_requested`, docs/partners.md): the same steps as an
    order's payout (commit `sending` with a deterministic key, call, settle; the reconciler by key; an operator's
    resolve) on the table `withdrawal_payouts`, announced as withdrawal_payout_sent / withdrawal_payout_failed."""

    TABLE = "withdrawal_payouts"
    KIND = "withdrawal"
    AUDIT_ACTION = "resolve_withdrawal_payout"

    def on_requested(self, cur, request):
        """`request`: libs.contracts.payments.PartnerPayoutRequestedSchema data (inside the handler's transaction,
        after the inbox claim). Returns the id of a payout to send now, or None.

        The key is made here, once, when the row is created: `partner-withdrawal-<installation>-<id>` (the
        installation prefix as for order payouts). A row keeps its stored key for good, so rows made before the
        prefix rule are still looked up and sent again under their old keys."""
        account = self.store.payout_account(cur, request["currency"])
        error = None if account is not None else "no payout account for %s" % request["currency"]
        key = domain.withdrawal_payout_key(self.store.key_prefix(), request["withdrawal_id"])
        row = self.store.insert_withdrawal_payout(cur, request, key, account, error)
        if row is None:
            # Asked again (a redelivery, a replayed outbox row): never a second payout; repeat a final answer.
            existing = self.store.withdrawal_payout(cur, request["withdrawal_id"])
            if existing is None:
                log.error("withdrawal %s: idempotency key %s belongs to another withdrawal; nothing sent",
                          request["withdrawal_id"], key)
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

    def _late_success_event(self, row):
        return {"withdrawal_id": row["withdrawal_id"]}, "withdrawal:%s" % row["withdrawal_id"]

    @staticmethod
    def _audit_ids(row):
        return {"withdrawal_id": row["withdrawal_id"]}

    @staticmethod
    def _to_wire(row):
        return withdrawal_payout_to_wire(row)
