"""`payout_succeeded_after_resolve` from payments becomes one letter to the admin address per announcement, whatever
is delivered twice: which request or partner withdrawal, how much, to whom, the provider's transfer, and that it must
not be paid again (docs/payments.md, "Resolving a payout by hand")."""

from libs.contracts import events
from tests.interface.event_publishing import publish
from tests.conftest import eventually



def late_success(kind, item_id, provider_id):
    data = {"kind": kind, "payout_id": 4400 + item_id, "idempotency_key": "inst-%s-%s-1" % (kind, item_id),
            "amount": "106.465", "currency": "USDT", "to_account": "ALICE-%s" % item_id, "provider_id": provider_id,
            "resolved_by": "admin-late"}
    data["order_id" if kind == "order" else "withdrawal_id"] = item_id
    return events.envelope("payments", events.PAYOUT_SUCCEEDED_AFTER_RESOLVE, data)


def test_each_late_success_is_one_admin_letter_also_when_delivered_twice(notifier, devsmtp, db, settings):
    admin = settings()["admin_email"]
    order = late_success("order", 9301, "T-9301")
    withdrawal = late_success("withdrawal", 9302, "T-9302")
    for _ in range(2):
        publish(order)
        publish(withdrawal)

    def late_letters():   # the admin address gets other letters too (new orders of other tests)
        return [m for m in devsmtp.letters(admin) if "#930" in str(m["Subject"])
                and str(m["Subject"]).endswith("went out after it was resolved failed")]
    eventually(lambda: len(late_letters()) >= 2, message="two admin letters")
    eventually(lambda: db.fetchone("SELECT count(*) AS n FROM processed_events WHERE event_id IN (%s, %s)",
                                   (order["event_id"], withdrawal["event_id"]))["n"] == 2)
    by_subject = {str(m["Subject"]): m.get_body(("plain",)).get_content() for m in late_letters()}
    [order_letter] = [body for subject, body in by_subject.items() if "request #9301 " in subject]
    [withdrawal_letter] = [body for subject, body in by_subject.items() if "partner withdrawal #9302 " in subject]
    for body, item_id in ((order_letter, 9301), (withdrawal_letter, 9302)):
        for text in ("Amount: 106.465 USDT", "Recipient: ALICE-%s" % item_id, "Provider transfer: T-%s" % item_id,
                     "do NOT pay it again", "resolved failed by admin-late"):
            assert text in body, (item_id, text)
    assert "finalize it" in order_letter and "ledger" in withdrawal_letter
    rows = db.fetchall("SELECT * FROM notifications WHERE kind = 'ALERT' AND dedupe_key IN (%s, %s)",
                       ("alert:late-success:%s:%s" % (order["event_id"], admin),
                        "alert:late-success:%s:%s" % (withdrawal["event_id"], admin)))
    assert len(rows) == 2 and len(late_letters()) == 2
