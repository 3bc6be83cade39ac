"""Payouts against the real sandbox: sent at most once, failures and unknown outcomes (docs/reliability.md, P6, P7)."""
from decimal import Decimal as D

import pytest

from tests.conftest import eventually
from tests.interface.payments.harness import paid_order_with_payout

pytestmark = pytest.mark.timeout(60)


def request_payout(env, order):
    env.changed(order, "paid", action="pay", amount_received=order["amount_in"])
    return env.changed(order, "payout", action="payout")


def payout_row(env, order, status=None):
    def check():
        rows = env.payouts(order["id"])
        return rows and (status is None or rows[-1]["status"] == status) and rows[-1]
    return eventually(check, message="payout %s" % (status or "row"))


def assert_paid_once(env, order, amount="92"):
    """The recipient got exactly one transfer, of amount_out: the money moved once."""
    incoming = env.incoming(env.recipient)
    assert [D(e["amount"]) for e in incoming] == [D(amount)], incoming
    assert env.balance(env.recipient) == D(amount)


def test_payout_is_sent_once_and_announced(env, service):
    service()
    order = paid_order_with_payout(env)
    request_payout(env, order)
    payout = payout_row(env, order, "sent")
    assert payout["idempotency_key"].startswith("payout-") and payout["idempotency_key"].endswith(
        "-%d-1" % order["id"])
    assert payout["amount"] == D("92") and payout["to_account"] == env.recipient and payout["sends"] == 1
    [event] = eventually(lambda: env.events_for("payout_sent", order["id"]))
    assert event["data"]["payout"]["provider_id"] == payout["provider_id"]
    [transfer] = env.transfers_by_key(payout["idempotency_key"])
    assert transfer["reference"] == order["reference"]
    assert_paid_once(env, order)
    # The same request again (a redelivery with a new event id, or orders asking twice): no second payout.
    env.publish("order_status_changed", {"order": dict(order), "from_status": "paid", "to_status": "payout",
                                         "action": "payout", "actor": None, "note": None})
    eventually(lambda: len(env.events_for("payout_sent", order["id"])) == 2, message="payout_sent again")
    assert len(env.payouts(order["id"])) == 1
    assert_paid_once(env, order)


@pytest.mark.parametrize("mode, apply", [("error", "before"), ("error", "after"), ("timeout", "before"),
                                         ("timeout", "after")])
def test_unknown_outcome_is_reconciled_by_key_never_paid_twice(env, service, mode, apply):
    """Provider 500 or a timeout, before or after the money moved: the payout stays `sending`, the reconciler
    looks the key up and either finds it (sent) or sends again with the same key. One transfer."""
    service()
    order = paid_order_with_payout(env)
    env.sandbox.fault(operation="transfer", mode=mode, apply=apply, count=1, delay_s="1.5",
                      account=env.recipient)
    request_payout(env, order)
    payout = payout_row(env, order, "sent")
    assert payout["error"] is None
    assert payout["checks"] >= 1  # resolved by the reconciler's lookup
    assert payout["sends"] == (2 if apply == "before" else 1)
    assert len(env.payouts(order["id"])) == 1
    assert len(env.events_for("payout_sent", order["id"])) == 1
    assert not env.events_for("payout_failed", order["id"])
    assert_paid_once(env, order)


def test_refusal_is_a_definite_failure(env, service):
    service()
    order = paid_order_with_payout(env)
    env.sandbox.fault(operation="transfer", mode="refuse", apply="before", count=1, account=env.recipient)
    request_payout(env, order)
    payout = payout_row(env, order, "failed")
    assert "refused" in payout["error"]
    [event] = eventually(lambda: env.events_for("payout_failed", order["id"]))
    assert "refused" in event["data"]["error"]
    assert env.incoming(env.recipient) == []

    # The operator retries (orders: payout_error -> payout): a new attempt with a new key, sent once.
    env.changed(order, "payout_error", action="payout_failed")
    env.changed(order, "payout", action="payout")
    eventually(lambda: len(env.payouts(order["id"])) == 2 and env.payouts(order["id"])[1]["status"] == "sent",
               message="second attempt sent")
    first, second = env.payouts(order["id"])
    assert first["idempotency_key"] != second["idempotency_key"] and second["attempt"] == 2
    assert_paid_once(env, order)


def test_refusal_after_the_money_moved_is_recognised_as_sent(env, service):
    """A provider that refuses but paid anyway: the lookup by key before calling it failed finds the payout."""
    service()
    order = paid_order_with_payout(env)
    env.sandbox.fault(operation="transfer", mode="refuse", apply="after", count=1, account=env.recipient)
    request_payout(env, order)
    payout = payout_row(env, order, "sent")
    assert not env.events_for("payout_failed", order["id"])
    assert payout["sends"] == 1
    assert_paid_once(env, order)


def test_payout_never_exceeds_what_was_received(env, service):
    """docs/reliability.md, P7: a partial payment buys less than amount_out; an operator's payout request fails
    without a call."""
    service()
    order = env.order()
    env.created(order)
    eventually(lambda: env.db.fetchone("SELECT 1 FROM orders WHERE id = %s", (order["id"],)))
    env.pay(order, amount="50")
    eventually(lambda: env.events_for("payment_received", order["id"]))
    request_payout(env, order)
    payout = payout_row(env, order, "failed")
    assert "exceeds" in payout["error"] and payout["sends"] == 0
    assert eventually(lambda: env.events_for("payout_failed", order["id"]))
    assert env.incoming(env.recipient) == []


def test_unknown_recipient_is_a_definite_failure(env, service):
    service()
    order = paid_order_with_payout(env, recipient="NOBODY-%s" % env.tag)
    request_payout(env, order)
    payout = payout_row(env, order, "failed")
    assert "not_found" in payout["error"] or "404" in payout["error"]


def test_an_admin_settles_a_payout_in_doubt_but_never_fails_one_the_provider_has(env, service):
    """docs/reliability.md, P6: only an operator forces `failed`, after checking by hand; a payout the payment
    system does have is refused that. Every attempt is audited."""
    from nameko.testing.services import entrypoint_hook
    container = service(RECONCILE_AFTER_SECONDS=600)   # the reconciler stays out of it
    moved = paid_order_with_payout(env)
    env.sandbox.fault(operation="transfer", mode="error", apply="after", count=1, account=env.recipient)
    request_payout(env, moved)
    payout = eventually(lambda: (env.payouts(moved["id"]) or [{}])[0].get("error") and env.payouts(moved["id"])[0])
    assert payout["status"] == "sending" and "unknown" in payout["error"]
    admin = {"name": "root", "role": "admin", "ip": "10.0.0.2"}
    with entrypoint_hook(container, "resolve_payout") as resolve:
        with pytest.raises(Exception) as refused:
            resolve(payout["id"], "failed", "the bank says no", admin)
        assert "Conflict" in type(refused.value).__name__ or "it was sent" in str(refused.value)
        done = resolve(payout["id"], "sent", "seen in the bank statement #%s" % payout["id"], admin)
    assert done["status"] == "sent" and done["resolved_by"] == "root"
    assert eventually(lambda: env.events_for("payout_sent", moved["id"]))
    audit = env.db.fetchall("SELECT actor, action, outcome FROM audit_log WHERE payout_id = %s ORDER BY id",
                            (payout["id"],))
    assert [(a["action"], a["outcome"]) for a in audit] == [("resolve_payout", "rejected"), ("resolve_payout", "ok")]
    # The accepted resolve, not the refused one, alerts every admin: `security_change` committed with it.
    alerts = env.db.fetchall("SELECT payload->'data' AS data FROM outbox WHERE event_type = 'security_change' "
                             "AND payload->'data'->>'actor' = 'root' AND payload->'data'->'detail'->>'note' = %s",
                             ("seen in the bank statement #%s" % payout["id"],))
    assert [(a["data"]["action"], a["data"]["actor_role"]) for a in alerts] == [("resolve_payout", "admin")]
    assert_paid_once(env, moved)


# -- resolving by hand: the claim, the age guard, the provider asked first, a success after the fact -------------
ADMIN = {"name": "root", "role": "admin", "ip": "10.0.0.2"}


class HeldCall:
    """Holds the first payout call before it reaches the payment system, as a slow provider or a frozen process
    would, until the test releases it."""

    def __init__(self, monkeypatch):
        import threading  # green: the interface tests run monkey-patched by eventlet
        from services.payments.adapters import sandbox
        self.entered, self.release, self.calls = threading.Event(), threading.Event(), 0
        real = sandbox.Adapter.send_payout

        def send_payout(adapter, *args, **kwargs):
            self.calls += 1
            if self.calls == 1:
                self.entered.set()
                self.release.wait(30)
            return real(adapter, *args, **kwargs)
        monkeypatch.setattr(sandbox.Adapter, "send_payout", send_payout)


def resolve_refused(container, hook_name, payout_id, outcome, note="checked by hand"):
    from nameko.testing.services import entrypoint_hook
    with entrypoint_hook(container, hook_name) as resolve:
        with pytest.raises(Exception) as refused:
            resolve(payout_id, outcome, note, ADMIN)
    assert type(refused.value).__name__ == "Conflict", refused.value
    return str(refused.value)


def resolve_ok(container, hook_name, payout_id, outcome, note="checked by hand"):
    from nameko.testing.services import entrypoint_hook
    with entrypoint_hook(container, hook_name) as resolve:
        return resolve(payout_id, outcome, note, ADMIN)


def test_resolving_failed_while_the_call_is_in_flight_is_refused(env, service, monkeypatch):
    """The provider is slow; an admin resolves the payout failed; the transfer then commits; an operator retry
    with a new key would pay the recipient twice. While the call may be in flight (younger than the reconciler's
    reach), resolve refuses."""
    held = HeldCall(monkeypatch)
    container = service(RECONCILE_SECONDS=600, RECONCILE_AFTER_SECONDS=600)
    order = paid_order_with_payout(env)
    request_payout(env, order)
    assert held.entered.wait(20)
    payout = payout_row(env, order, "sending")
    message = resolve_refused(container, "resolve_payout", payout["id"], "failed")
    assert "in flight" in message
    assert env.payouts(order["id"])[0]["status"] == "sending"
    held.release.set()
    payout_row(env, order, "sent")
    assert eventually(lambda: env.events_for("payout_sent", order["id"]))
    assert not env.events_for("payout_failed", order["id"])
    audit = env.db.fetchall("SELECT outcome, detail FROM audit_log WHERE payout_id = %s", (payout["id"],))
    assert [a["outcome"] for a in audit] == ["rejected"] and "in flight" in audit[0]["detail"]["reason"]
    assert_paid_once(env, order)


def test_resolve_asks_the_provider_first_and_records_what_it_has(env, service):
    """The money moved but the answer was lost: an admin who asks `failed` is refused, and the payout is
    recorded `sent` with the provider's id (the provider's word wins over the operator's)."""
    container = service(RECONCILE_SECONDS=600, RECONCILE_AFTER_SECONDS=600)
    order = paid_order_with_payout(env)
    env.sandbox.fault(operation="transfer", mode="error", apply="after", count=1, account=env.recipient)
    request_payout(env, order)
    payout = eventually(lambda: (env.payouts(order["id"]) or [{}])[0].get("error") and env.payouts(order["id"])[0])
    message = resolve_refused(container, "resolve_payout", payout["id"], "failed")
    assert "it was sent" in message
    row = env.payouts(order["id"])[0]
    [transfer] = env.transfers_by_key(row["idempotency_key"])
    assert row["status"] == "sent" and row["provider_id"] == transfer["id"] and row["resolved_by"] == "root"
    assert eventually(lambda: env.events_for("payout_sent", order["id"]))
    assert not env.events_for("payout_failed", order["id"])
    assert_paid_once(env, order)


def test_late_success_after_a_manual_resolve_is_recorded_and_alerted(env, service, monkeypatch):
    """A call stuck beyond the reconciler's reach (a frozen process) may be resolved failed; when it returns
    `sent` after all, that is recorded on the payout (late_success, the provider's id) and announced as
    payout_succeeded_after_resolve, never dropped, and never announced as payout_sent (the order is in
    payout_error and must not complete)."""
    from prometheus_client import REGISTRY
    held = HeldCall(monkeypatch)
    # RECONCILE_AFTER_SECONDS is raised to the longest call (0.5 s + 0.5 s connect) + 1 s: the reach is 2 s.
    # The reconciler timer stays out of it (it would look up and send again with the same key).
    container = service(RECONCILE_SECONDS=600, RECONCILE_AFTER_SECONDS=0.1)
    order = paid_order_with_payout(env)
    request_payout(env, order)
    assert held.entered.wait(20)
    payout = payout_row(env, order, "sending")
    before = REGISTRY.get_sample_value("exchanger_payout_late_success_total", {"kind": "order"}) or 0
    eventually(lambda: env.db.fetchone("SELECT 1 FROM payouts WHERE id = %s AND attempted_at < now() - "
                                       "interval '2.2 seconds'", (payout["id"],)), message="past the reach")
    done = resolve_ok(container, "resolve_payout", payout["id"], "failed")
    assert done["status"] == "failed" and done["resolved_by"] == "root"
    assert eventually(lambda: env.events_for("payout_failed", order["id"]))
    held.release.set()
    row = eventually(lambda: env.payouts(order["id"])[0]["late_success"] and env.payouts(order["id"])[0],
                     message="late success recorded")
    [transfer] = env.transfers_by_key(row["idempotency_key"])
    assert row["status"] == "failed" and row["provider_id"] == transfer["id"] and row["late_success_at"]
    [event] = eventually(lambda: env.events_for("payout_succeeded_after_resolve", order["id"]))
    assert event["data"]["payout"]["provider_id"] == transfer["id"] and event["data"]["resolved_by"] == "root"
    assert not env.events_for("payout_sent", order["id"])
    after = REGISTRY.get_sample_value("exchanger_payout_late_success_total", {"kind": "order"})
    assert after == before + 1
    assert_paid_once(env, order)


def test_resolve_claim_is_a_compare_and_set_on_the_last_call(env):
    """The claim succeeds once, only past the reach, and only if nobody called the provider since the row was
    read (the reconciler's resend moves attempted_at)."""
    from services.payments.store import PaymentStore
    store = PaymentStore(env.db)
    row = env.db.fetchone(
        "INSERT INTO payouts (order_id, attempt, idempotency_key, order_version, system, from_account, to_account, "
        "amount, currency, status, sends, attempted_at) VALUES (1, 1, %s, 1, 'sandbox', 'A', 'B', 5, 'EUR', "
        "'sending', 1, now() - interval '1 hour') RETURNING *", ("payout-cas-%s" % env.tag,))
    young = env.db.fetchone("INSERT INTO payouts (order_id, attempt, idempotency_key, order_version, system, "
                            "from_account, to_account, amount, currency, status, sends) VALUES (2, 1, %s, 1, "
                            "'sandbox', 'A', 'B', 5, 'EUR', 'sending', 1) RETURNING *", ("payout-young-%s" % env.tag,))
    with env.db.transaction() as cur:
        assert store.claim_resolve(cur, "payouts", young["id"], young["attempted_at"], 30, "failed", "x", "root") \
            is None
    resent = store.claim_resend("payouts", row["id"], 30)
    with env.db.transaction() as cur:
        assert store.claim_resolve(cur, "payouts", row["id"], row["attempted_at"], 0.001, "failed", "x", "root") \
            is None
    with env.db.transaction() as cur:
        claimed = store.claim_resolve(cur, "payouts", row["id"], resent["attempted_at"], 0.001, "failed", "x",
                                      "root")
    assert claimed["status"] == "failed" and claimed["resolved_by"] == "root"
    with env.db.transaction() as cur:
        assert store.claim_resolve(cur, "payouts", row["id"], resent["attempted_at"], 0.001, "sent", None,
                                   "root") is None
