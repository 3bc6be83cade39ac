"""End to end: every letter and SMS of the matrix (docs/notifier.md, "The matrix") for what the HTTP API drives,
once each, to the real aiosmtpd server of the Procfile and, through the real twilio client, to the Twilio
stand-in."""
import re
import uuid

import pytest

from libs.contracts.notifier import KINDS
from tests.conftest import eventually
from tests.e2e.notifier_support import (Mail, consumed, log, new_order, pay, publish_to_notifier, put_settings,
                                        settled, standin, status_is, text_of, unique_phone, wallet)
from tests.interface.notifier import factories


@pytest.fixture
def admin(system, admin_token):
    """Fresh admin addresses and SMS on for this test (each settings change is also mailed to the admin)."""
    email_, phone = "admin-%s@example.com" % uuid.uuid4().hex[:10], unique_phone()
    put_settings(system, admin_token, admin_email=email_, admin_phone=phone, sms_enabled=True, admin_language="en",
                 enabled_kinds=list(KINDS))
    return {"email": email_, "phone": phone}


def act(system, token, order_id, action, **body):
    response = system.api("POST", "/api/v1/admin/orders/%s/%s" % (order_id, action), token=token, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def sms_about(twilio, phone, order_id):
    return [m["body"] for m in twilio.sent_to(phone) if re.search(r"#%s\b" % order_id, m["body"])]


def test_manual_exchange_letters_and_sms(system, admin_token, directions, admin):
    mail, twilio = Mail(system), standin(system)
    phone = unique_phone()
    order = new_order(system, directions["manual"], phone=phone, sms_opt_in=True)
    oid = order["id"]
    assert system.api("POST", "/api/v1/orders/%s/paid" % order["token"], json={}).status_code == 200
    act(system, admin_token, oid, "process", notice="Payment found in the account, thank you")
    act(system, admin_token, oid, "finalize", notice="Sent from wallet W-7, tx 0xabc")
    quiet = new_order(system, directions["manual"])  # no phone: no S5; canceled with a reason
    act(system, admin_token, quiet["id"], "cancel", reason="The amount received did not match the request")

    eventually(lambda: consumed(system, oid) and consumed(system, quiet["id"]), timeout=30,
               message="every order event consumed")
    eventually(lambda: settled(system, admin_token, [oid, quiet["id"]]), timeout=30, message="all sent")

    # the letters of the matrix, and no others, each once
    assert mail.kinds(order["email"]) == ["L1", "L2", "L3"]
    assert mail.kinds(admin["email"], oid) == ["L8", "L9"]
    assert mail.kinds(quiet["email"]) == ["L1", "L4"]
    assert mail.kinds(admin["email"], quiet["id"]) == ["L8"]
    letters = {m["X-Exchanger-Kind"]: m for m in mail.letters(order["email"])}
    assert "Payment found in the account, thank you" in text_of(letters["L2"])
    assert "Sent from wallet W-7, tx 0xabc" in text_of(letters["L3"])
    for letter in letters.values():
        body = text_of(letter)
        for detail in ("%s %s" % (order["amount_in"], order["currency_in"]),
                       "%s %s" % (order["amount_out"], order["currency_out"]), order["rate_out"],
                       system.env["PUBLIC_URL"] + "/orders/" + order["token"]):
            assert detail in body, (letter["X-Exchanger-Kind"], detail)
        assert letter.get_body(("html",)) is not None
    cancel = mail.letters(quiet["email"], quiet["id"])
    assert "The amount received did not match the request" in text_of(
        next(m for m in cancel if m["X-Exchanger-Kind"] == "L4"))

    # SMS through the twilio client: S3 to the admin for each manual order, S5 to the customer who opted in
    eventually(lambda: len(twilio.sent_to(phone)) == 1, message="S5")
    assert len(sms_about(twilio, admin["phone"], oid)) == 1
    assert len(sms_about(twilio, admin["phone"], quiet["id"])) == 1
    entries = log(system, admin_token, order_id=oid)
    assert sorted((e["kind"], e["channel"]) for e in entries) == [
        ("L1", "email"), ("L2", "email"), ("L3", "email"), ("L8", "email"), ("L9", "email"),
        ("S3", "sms"), ("S5", "sms")]
    assert all(e["status"] == "sent" and e["attempts"] == 1 for e in entries)
    # the stand-in posts signed delivery callbacks to the gateway: the log shows the delivery status
    s5 = next(e for e in entries if e["kind"] == "S5")
    eventually(lambda: log(system, admin_token, order_id=oid, kind="S5")[0]["provider_status"] == "delivered",
               message="delivered callback applied")
    assert s5["provider_id"] == twilio.sent_to(phone)[0]["sid"]


@pytest.mark.parametrize("exchange_type", ["semi_auto", "auto"])
def test_automatic_directions_through_the_api(system, admin_token, directions, admin, exchange_type):
    """Created: the "request created" letter (L1, issue 15). Canceled by an operator: L4 with the reason."""
    mail = Mail(system)
    order = new_order(system, directions[exchange_type], phone=unique_phone(), sms_opt_in=True)
    act(system, admin_token, order["id"], "cancel", reason="Customer asked to stop, refund arranged")
    eventually(lambda: consumed(system, order["id"]), timeout=30, message="events consumed")
    eventually(lambda: settled(system, admin_token, [order["id"]]), timeout=30)
    assert mail.kinds(order["email"]) == ["L1", "L4"]
    by_kind = {m["X-Exchanger-Kind"]: m for m in mail.letters(order["email"])}
    assert "Customer asked to stop, refund arranged" in text_of(by_kind["L4"])
    assert order["pay_to"]["reference"] in text_of(by_kind["L1"]) and order["reference"] in by_kind["L1"]["Subject"]
    assert mail.letters(admin["email"], order["id"]) == []
    assert sorted((e["kind"], e["channel"]) for e in log(system, admin_token, order_id=order["id"])) == [
        ("L1", "email"), ("L4", "email")]


def test_paid_through_the_sandbox_auto_and_semi_auto(system, admin_token, directions, admin):
    """The whole chain: the customer pays at the sandbox bank, payments detects it, orders moves, the notifier
    sends. auto: paid -> payout -> completed (L3, L6, S1). semi_auto: paid (L7, S2), the operator confirms the
    payout -> completed (L3, S5)."""
    mail, twilio = Mail(system), standin(system)
    auto_dir, semi_dir = directions["auto"], directions["semi_auto"]
    auto = new_order(system, auto_dir, amount_in=auto_dir["min_amount"], phone=unique_phone(), sms_opt_in=True,
                     recipient=wallet(system, auto_dir["currency_out"]))
    semi = new_order(system, semi_dir, amount_in=semi_dir["min_amount"], phone=unique_phone(), sms_opt_in=True,
                     recipient=wallet(system, semi_dir["currency_out"]))
    pay(system, auto)
    pay(system, semi)
    status_is(system, auto, "completed")
    status_is(system, semi, "paid")
    eventually(lambda: mail.kinds(admin["email"], semi["id"]) == ["L7"], timeout=30, message="L7")
    act(system, admin_token, semi["id"], "payout")
    status_is(system, semi, "completed")
    for order in (auto, semi):
        eventually(lambda: consumed(system, order["id"]), timeout=30, message="consumed")
    eventually(lambda: settled(system, admin_token, [auto["id"], semi["id"]]), timeout=30)
    # every request gets the "request created" letter with where to pay (L1), whatever its type
    assert mail.kinds(auto["email"]) == ["L1", "L3"] and mail.kinds(admin["email"], auto["id"]) == ["L6"]
    assert mail.kinds(semi["email"]) == ["L1", "L3"] and mail.kinds(admin["email"], semi["id"]) == ["L7"]
    assert len(sms_about(twilio, admin["phone"], auto["id"])) == 1                  # S1
    assert len(sms_about(twilio, admin["phone"], semi["id"])) == 1                  # S2
    assert twilio.sent_to(auto["phone"]) == []                                       # no S5 for auto
    eventually(lambda: len(twilio.sent_to(semi["phone"])) == 1, message="S5")       # semi_auto, opted in
    assert sorted(e["kind"] for e in log(system, admin_token, order_id=semi["id"])) == ["L1", "L3", "L7", "S2", "S5"]


def test_automatic_directions_payment_transitions(system, admin_token, admin):
    """paid / payout_error / completed come from the payments service: realistic order events, as orders
    publishes them, straight into the notifier's queues."""
    mail, twilio = Mail(system), standin(system)
    semi = factories.order("semi_auto", email="semi-%s@example.com" % uuid.uuid4().hex[:8], phone=unique_phone(),
                           sms_opt_in=True, order_id=10**12 + uuid.uuid4().int % 10**9)
    paid, event = factories.changed(semi, "new", "paid", action="pay", actor_kind="system")
    publish_to_notifier(event)
    payout, event = factories.changed(paid, "paid", "payout", action="payout")
    publish_to_notifier(event)
    failed, event = factories.changed(payout, "payout", "payout_error", action="payout_failed",
                                      actor_kind="system", note="sandbox: account blocked")
    publish_to_notifier(event)
    _, event = factories.changed(failed, "payout_error", "completed", action="finalize", note="Paid by hand")
    publish_to_notifier(event)
    auto = factories.order("auto", email="auto-%s@example.com" % uuid.uuid4().hex[:8], phone=unique_phone(),
                           sms_opt_in=True, order_id=10**12 + uuid.uuid4().int % 10**9)
    _, event = factories.changed(dict(auto, status="payout"), "payout", "completed", action="payout_sent",
                                 actor_kind="system")
    publish_to_notifier(event)

    eventually(lambda: settled(system, admin_token, [semi["id"], auto["id"]]) and
               len(log(system, admin_token, order_id=semi["id"])) == 6 and
               len(log(system, admin_token, order_id=auto["id"])) == 3, timeout=30, message="all sent")
    assert mail.kinds(admin["email"], semi["id"]) == ["L10", "L7"]
    assert mail.kinds(semi["email"]) == ["L3"] and "Paid by hand" in text_of(mail.letters(semi["email"])[0])
    assert "sandbox: account blocked" in text_of(mail.letters(admin["email"], semi["id"])[0]) + text_of(
        mail.letters(admin["email"], semi["id"])[1])
    assert mail.kinds(admin["email"], auto["id"]) == ["L6"]
    assert mail.kinds(auto["email"]) == ["L3"]
    admin_sms = lambda oid: sms_about(twilio, admin["phone"], oid)  # noqa: E731
    eventually(lambda: len(admin_sms(semi["id"])) == 2, message="S2 and S4")
    assert any("paid" in b for b in admin_sms(semi["id"])) and any("payout error" in b for b in admin_sms(semi["id"]))
    assert len(twilio.sent_to(semi["phone"])) == 1           # S5: semi_auto completed, opted in
    assert twilio.sent_to(auto["phone"]) == []               # no S5 for auto
    assert len(admin_sms(auto["id"])) == 1                   # S1


def test_no_sms_when_disabled(system, admin_token, directions, admin):
    put_settings(system, admin_token, sms_enabled=False)
    twilio = standin(system)
    phone = unique_phone()
    order = new_order(system, directions["manual"], phone=phone, sms_opt_in=True)
    assert system.api("POST", "/api/v1/orders/%s/paid" % order["token"], json={}).status_code == 200
    act(system, admin_token, order["id"], "finalize")
    eventually(lambda: consumed(system, order["id"]), timeout=30)
    eventually(lambda: settled(system, admin_token, [order["id"]]), timeout=30)
    assert sorted(e["kind"] for e in log(system, admin_token, order_id=order["id"])) == ["L1", "L3", "L8", "L9"]
    assert twilio.sent_to(phone) == []
    assert sms_about(twilio, admin["phone"], order["id"]) == []


def test_settings_over_http(system, admin_token):
    current = system.api("GET", "/api/v1/admin/settings", token=admin_token)
    assert current.status_code == 200 and current.json()["sms_configured"] is True
    version = current.json()["version"]
    bad = system.sensitive("PUT", "/api/v1/admin/settings", token=admin_token,
                           json={"customer_sms_fee": "100", "status": "x"})
    assert bad.status_code == 422 and {"customer_sms_fee", "status"} <= set(bad.json()["fields"])
    stale = system.sensitive("PUT", "/api/v1/admin/settings", token=admin_token,
                             json={"customer_sms_fee": "0.5", "version": version - 1 if version > 1 else 10**6})
    assert stale.status_code == 409
    ok = put_settings(system, admin_token, customer_sms_fee="0.5", version=version)
    assert ok["customer_sms_fee"] == "0.5" and ok["version"] == version + 1
    assert system.api("GET", "/api/v1/admin/settings").status_code == 401
    audit = system.sql("SELECT action, outcome FROM gateway.audit_log WHERE action = 'settings.update' "
                       "ORDER BY id DESC LIMIT 1")
    assert audit == [{"action": "settings.update", "outcome": "ok"}]
    events = system.sql("SELECT payload FROM notifier.outbox WHERE event_type = 'settings_changed' "
                        "AND payload->'data'->>'version' = %s", (str(ok["version"]),))
    assert events and events[0]["payload"]["data"]["customer_sms_fee"] == "0.5"
