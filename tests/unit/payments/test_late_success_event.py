"""payout_succeeded_after_resolve: what payments writes for an order's and a withdrawal's payout loads with the
contract's schema (libs/contracts/payments.py)."""
import datetime
from decimal import Decimal as D

from libs.contracts import events
from libs.contracts.payments import PayoutSucceededAfterResolveSchema
from services.payments.payouts import OrderPayouts, WithdrawalPayouts

T0 = datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.timezone.utc)
COMMON = {"id": 5, "idempotency_key": "k-1", "system": "sandbox", "from_account": "EXCH-EUR", "to_account": "ALICE",
          "amount": D("92.000000000000000000"), "currency": "EUR", "reference": "R", "status": "failed",
          "provider_id": "t-9", "error": "failed by root: x", "sends": 1, "checks": 0, "created_at": T0,
          "attempted_at": T0, "sent_at": None, "failed_at": T0, "resolved_by": "root", "late_success": True,
          "late_success_at": T0}


class RecordingStore:
    db = None

    def __init__(self):
        self.events = []

    def event(self, cur, event_type, data, aggregate_id=None):
        self.events.append((event_type, data, aggregate_id))


def test_late_success_event_of_an_order_payout():
    store = RecordingStore()
    OrderPayouts(store, {})._announce_late_success(None, dict(COMMON, order_id=42, attempt=1, received=D("100")))
    [(event_type, data, aggregate_id)] = store.events
    assert (event_type, aggregate_id) == (events.PAYOUT_SUCCEEDED_AFTER_RESOLVE, 42)
    loaded = PayoutSucceededAfterResolveSchema().load(data)
    assert (loaded["kind"], loaded["order_id"], loaded["provider_id"], loaded["amount"]) == ("order", 42, "t-9",
                                                                                            D("92"))
    assert loaded["payout"]["id"] == 5 and data["amount"] == "92"


def test_late_success_event_of_a_withdrawal_payout():
    store = RecordingStore()
    WithdrawalPayouts(store, {})._announce_late_success(None, dict(COMMON, withdrawal_id=7, partner_id=3))
    [(event_type, data, aggregate_id)] = store.events
    assert (event_type, aggregate_id) == (events.PAYOUT_SUCCEEDED_AFTER_RESOLVE, "withdrawal:7")
    loaded = PayoutSucceededAfterResolveSchema().load(data)
    assert (loaded["kind"], loaded["withdrawal_id"], loaded["order_id"], loaded["resolved_by"]) == (
        "withdrawal", 7, None, "root")
