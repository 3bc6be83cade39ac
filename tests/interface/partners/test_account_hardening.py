"""Customer and partner accounts hardened (docs/security.md, "Customer and partner accounts") in the real orders
service and database: sign-in counted per e-mail and address before the password is checked, common passwords
refused, the sign-up confirmed only with its password, TOTP for accounts with replay refused, withdrawal
destinations confirmed by a one-time link before an approval, and a letter (an `account_notice` event) on every
password change, reset and withdrawal request."""
import datetime
import hashlib
import secrets
import time
import uuid

import pyotp
import pytest

from libs import errors
from libs.contracts.orders import AccountNoticeSchema
from libs.db import Database
from services.notifier.render import Renderer
from services.notifier.schemas import notification_to_wire
from services.notifier.store import NotifierStore
from tests.interface.partners.conftest import (STAFF, call, completed_order, confirmed_account, manual_direction,
                                               notice_events, partner, token_from_outbox, unique_email)


@pytest.fixture
def nameko_config(nameko_config):
    # a minute's first delay: each call here takes a second or two on a busy machine, the default 2 s would be over
    return dict(nameko_config, ACCOUNT_SIGNIN_DELAY_SECONDS=60, ACCOUNT_SIGNIN_MAX_DELAY_SECONDS=600)


def sign_in(orders, email, password, ip="10.0.0.1", code=None, kind="api"):
    raw = secrets.token_urlsafe(32)
    result = call(orders, "account_sign_in", email, password, hashlib.sha256(raw.encode()).hexdigest(), kind, 3600,
                  ip, code)
    return raw, result


def test_sign_in_failures_of_one_email_and_address_block_that_pair_with_growing_delays(orders, sql):
    account = confirmed_account(orders, sql)
    email = account["email"]
    for _ in range(5):                                   # ACCOUNT_SIGNIN_FREE_FAILURES (5) cost nothing
        assert sign_in(orders, email, "wrong password 1")[1] == {"ok": False, "reason": "invalid"}
    assert sign_in(orders, email, "wrong password 1")[1]["reason"] == "invalid"   # the 6th: evaluated, then a block
    blocked = sign_in(orders, email.upper(), account["password"])[1]               # even the right password waits
    assert blocked["reason"] == "throttled" and 30 <= blocked["retry_after"] <= 60
    # the owner from another address is not locked out by an attacker's failures
    assert sign_in(orders, email, account["password"], ip="10.0.0.2")[1]["ok"] is True
    row = sql("SELECT failures FROM orders.account_signin_throttle WHERE email_key = %s AND ip = '10.0.0.1'",
              (email.lower(),))[0]
    assert row["failures"] == 6
    # the delays grow: the block over, the 7th failure blocks for twice as long
    sql("UPDATE orders.account_signin_throttle SET blocked_until = now() WHERE email_key = %s", (email.lower(),))
    assert sign_in(orders, email, "wrong password 2")[1]["reason"] == "invalid"
    assert 90 <= sign_in(orders, email, account["password"])[1]["retry_after"] <= 120
    # unknown addresses are throttled alike (nothing to learn about which exist)
    stranger = unique_email("nobody")
    results = [sign_in(orders, stranger, "whatever password")[1]["reason"] for _ in range(8)]
    assert results == ["invalid"] * 6 + ["throttled"] * 2
    # a success resets the pair
    sql("UPDATE orders.account_signin_throttle SET blocked_until = now() WHERE email_key = %s", (email.lower(),))
    assert sign_in(orders, email, account["password"])[1]["ok"] is True
    assert sql("SELECT count(*) AS n FROM orders.account_signin_throttle WHERE email_key = %s AND ip = '10.0.0.1'",
               (email.lower(),))[0]["n"] == 0
    audit = sql("SELECT outcome FROM orders.audit_log WHERE action = 'account_sign_in' AND actor = %s",
                ("account:%s" % account["id"],))
    assert {"throttled", "failed", "ok"} <= {a["outcome"] for a in audit}


@pytest.mark.parametrize("password", ["password1234", "qwertyuiop", "1q2w3e4r5t", "iloveyou12", "Password123!"])
def test_common_passwords_are_refused_naming_the_field(orders, sql, password):
    email = unique_email()
    with pytest.raises(errors.ValidationFailed) as info:
        call(orders, "account_signup", email, password, "en")
    assert "too common" in info.value.fields["password"][0]
    assert sql("SELECT count(*) AS n FROM orders.accounts WHERE email = %s", (email,))[0]["n"] == 0


def test_a_password_built_from_the_email_is_refused(orders, sql):
    with pytest.raises(errors.ValidationFailed) as info:
        call(orders, "account_signup", "marvinzucker@example.com", "marvinzucker1", "en")
    assert "password" in info.value.fields


def test_the_confirmation_link_confirms_only_with_the_sign_up_password_and_ends_after_five_wrong(orders, sql):
    """An attacker signs up with the victim's address and their own password: the victim who opens the letter
    cannot confirm it (they do not know that password), so the account never becomes the attacker's."""
    email = unique_email("victim")
    call(orders, "account_signup", email, "attackers own password 1", "en")
    account_id = sql("SELECT id FROM orders.accounts WHERE email = %s", (email,))[0]["id"]
    token = token_from_outbox(sql, "account_signup_requested", account_id, "confirm_url")
    for attempt in range(5):
        with pytest.raises(errors.ValidationFailed) as info:
            call(orders, "account_confirm", token, "the victims password %d" % attempt)
        assert info.value.fields == {"password": ["not the password chosen at this sign-up"]}
    with pytest.raises(errors.ValidationFailed) as info:   # the link has ended, even with the right password
        call(orders, "account_confirm", token, "attackers own password 1")
    assert "token" in info.value.fields
    assert sql("SELECT email_confirmed_at FROM orders.accounts WHERE id = %s", (account_id,))[0][
        "email_confirmed_at"] is None
    with pytest.raises(errors.ValidationFailed):
        call(orders, "account_confirm", token)            # no password at all: refused too


def test_totp_enrolment_sign_in_asks_for_the_code_and_a_code_works_once(orders, sql):
    account = confirmed_account(orders, sql)
    enrolment = call(orders, "account_totp_begin", account["id"])
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/")
    totp = pyotp.TOTP(enrolment["secret"])
    with pytest.raises(errors.ValidationFailed) as info:
        call(orders, "account_totp_confirm", account["id"], "000000" if totp.now() != "000000" else "111111")
    assert "code" in info.value.fields
    step = int(time.time()) // 30
    assert call(orders, "account_totp_confirm", account["id"], totp.at(step * 30))["totp_enabled"] is True
    with pytest.raises(errors.Conflict):
        call(orders, "account_totp_begin", account["id"])   # on already: no new secret handed out

    # the password alone is not enough; the code of a step already used (the enrolment's) is refused
    assert sign_in(orders, account["email"], account["password"])[1] == {"ok": False, "reason": "code_required"}
    assert sign_in(orders, account["email"], account["password"], code=totp.at(step * 30))[1]["reason"] == "invalid"
    assert sign_in(orders, account["email"], "wrong password 99", code=totp.at((step + 1) * 30))[1]["reason"] == \
        "invalid"
    raw, result = sign_in(orders, account["email"], account["password"], code=totp.at((step + 1) * 30))
    assert result["ok"] is True and result["account"]["totp_enabled"] is True
    # replay: the same code again is refused
    assert sign_in(orders, account["email"], account["password"], code=totp.at((step + 1) * 30),
                   ip="10.9.9.9")[1]["reason"] == "invalid"

    # switching it off takes the password and a fresh code
    with pytest.raises(errors.ValidationFailed) as info:
        call(orders, "account_totp_disable", account["id"], "wrong password 99", totp.at((step - 1) * 30))
    assert "password" in info.value.fields
    with pytest.raises(errors.ValidationFailed) as info:
        call(orders, "account_totp_disable", account["id"], account["password"], totp.at((step + 1) * 30))
    assert "code" in info.value.fields
    sql("UPDATE orders.account_totp SET last_step = %s WHERE account_id = %s", (step - 3, account["id"]))
    assert call(orders, "account_totp_disable", account["id"], account["password"],
                totp.at(step * 30))["totp_enabled"] is False
    assert sign_in(orders, account["email"], account["password"], ip="10.9.9.8")[1]["ok"] is True
    actions = [a["action"] for a in sql("SELECT action FROM orders.audit_log WHERE actor = %s AND action "
                                        "LIKE 'account_totp%%' AND outcome = 'ok' ORDER BY id",
                                        ("account:%s" % account["id"],))]
    assert actions == ["account_totp_begin", "account_totp_enrol", "account_totp_disable"]


def test_password_change_ends_other_sessions_and_every_change_or_reset_is_announced(orders, sql):
    account = confirmed_account(orders, sql)
    keep, _ = sign_in(orders, account["email"], account["password"], kind="web")
    other, _ = sign_in(orders, account["email"], account["password"], ip="10.0.0.3")
    keep_hash = hashlib.sha256(keep.encode()).hexdigest()
    with pytest.raises(errors.ValidationFailed) as info:
        call(orders, "account_change_password", account["id"], "not my password", "a fresh new secret 1", keep_hash)
    assert "current_password" in info.value.fields
    with pytest.raises(errors.ValidationFailed) as info:
        call(orders, "account_change_password", account["id"], account["password"], "password1234", keep_hash)
    assert "password" in info.value.fields
    assert notice_events(sql, account["id"]) == []        # refused changes tell nobody anything
    call(orders, "account_change_password", account["id"], account["password"], "a fresh new secret 1", keep_hash)
    assert call(orders, "account_for_session", keep_hash)["id"] == account["id"]
    assert call(orders, "account_for_session", hashlib.sha256(other.encode()).hexdigest()) is None
    [changed] = notice_events(sql, account["id"])
    assert changed["notice"] == "password_changed" and changed["email"] == account["email"]

    call(orders, "account_password_reset_request", account["email"])
    token = token_from_outbox(sql, "password_reset_requested", account["id"], "reset_url")
    call(orders, "account_password_reset", token, "another new secret 2")
    assert [n["notice"] for n in notice_events(sql, account["id"])] == ["password_changed", "password_reset"]
    call(orders, "account_password_reset_request", account["email"])
    token = token_from_outbox(sql, "password_reset_requested", account["id"], "reset_url")
    with pytest.raises(errors.ValidationFailed) as info:
        call(orders, "account_password_reset", token, "qwertyuiop12")     # a common one: refused, link kept
    assert "password" in info.value.fields
    assert len(notice_events(sql, account["id"])) == 2


def _funded(orders, sql):
    p = partner(orders, sql)
    call(orders, "update_partner", p["partner"]["id"], {"percent": "10", "base": "amount"}, STAFF)
    completed_order(orders, manual_direction(orders), partner_code=p["partner"]["code"])
    call(orders, "update_commission", {"min_withdrawal": "1"}, STAFF)
    return p


def test_a_new_destination_waits_for_the_link_in_the_letter_which_works_once(orders, sql):
    p = _funded(orders, sql)
    to_account = "NEW-%s" % uuid.uuid4().hex[:8]
    w = call(orders, "request_withdrawal", p["id"], "2", "USDT", to_account, None)
    assert w["destination_confirmed"] is False
    [letter] = notice_events(sql, p["id"], "withdrawal_requested")
    assert letter["withdrawal"] == {"id": w["id"], "amount": "2", "currency": "USDT", "to_account": to_account}
    assert "/account/destination?token=" in letter["link"] and letter["expires_at"]
    token = letter["link"].split("token=", 1)[1]
    stored = sql("SELECT token_hash FROM orders.withdrawal_destination_tokens WHERE withdrawal_id = %s", (w["id"],))
    assert stored == [{"token_hash": hashlib.sha256(token.encode()).hexdigest()}]      # only the hash is kept

    with pytest.raises(errors.Conflict) as info:           # money does not go there yet
        call(orders, "decide_withdrawal", w["id"], "approve", STAFF, "payout", None, None)
    assert "to_account" in info.value.fields
    assert sql("SELECT status FROM orders.partner_withdrawals WHERE id = %s", (w["id"],))[0]["status"] == "requested"
    assert sql("SELECT count(*) AS n FROM orders.outbox WHERE event_type = 'partner_payout_requested' AND "
               "aggregate_id = %s", ("withdrawal:%s" % w["id"],))[0]["n"] == 0
    listed = call(orders, "list_withdrawals", {"partner_id": p["partner"]["id"]})["items"]
    assert [x["destination_confirmed"] for x in listed if x["id"] == w["id"]] == [False]

    # a second request to the same account before confirming: another letter, another link; either confirms
    w2 = call(orders, "request_withdrawal", p["id"], "1", "USDT", to_account, None)
    second = notice_events(sql, p["id"], "withdrawal_requested")[-1]
    assert second["link"] and second["link"] != letter["link"]
    assert call(orders, "confirm_withdrawal_destination", token) == {"currency": "USDT", "to_account": to_account,
                                                                     "confirmed": True}
    for used in (token, second["link"].split("token=", 1)[1]):   # single use; the other open link ended too
        with pytest.raises(errors.ValidationFailed):
            call(orders, "confirm_withdrawal_destination", used)
    approved = call(orders, "decide_withdrawal", w["id"], "approve", STAFF, "payout", None, None)
    assert approved["status"] == "approved"
    call(orders, "decide_withdrawal", w2["id"], "approve", STAFF, "manual", "T-9", None)
    # a confirmed destination: the next request's letter has no link
    call(orders, "request_withdrawal", p["id"], "1", "USDT", to_account, None)
    assert notice_events(sql, p["id"], "withdrawal_requested")[-1].get("link") is None
    audit = sql("SELECT outcome, detail FROM orders.audit_log WHERE action = 'partner_withdrawal_approve' AND "
                "detail->>'withdrawal_id' = %s ORDER BY id", (str(w["id"]),))
    assert [a["outcome"] for a in audit] == ["rejected", "ok"]


def test_an_expired_destination_link_does_nothing(orders, sql):
    p = _funded(orders, sql)
    w = call(orders, "request_withdrawal", p["id"], "2", "USDT", "LATE-%s" % uuid.uuid4().hex[:8], None)
    token = notice_events(sql, p["id"], "withdrawal_requested")[-1]["link"].split("token=", 1)[1]
    sql("UPDATE orders.withdrawal_destination_tokens SET expires_at = now() - interval '1 second' "
        "WHERE withdrawal_id = %s", (w["id"],))
    with pytest.raises(errors.ValidationFailed):
        call(orders, "confirm_withdrawal_destination", token)
    with pytest.raises(errors.Conflict):
        call(orders, "decide_withdrawal", w["id"], "approve", STAFF, "manual", "T-1", None)
    # rejecting still works: the held amount returns
    assert call(orders, "decide_withdrawal", w["id"], "reject", STAFF, None, None, "never confirmed")[
        "status"] == "rejected"


@pytest.fixture
def notifier_store(migrated_database):
    database = Database(migrated_database, schema="notifier", maxconn=2)
    yield NotifierStore(database, Renderer("https://exchanger.example"))
    database.close()


@pytest.mark.parametrize("notice,language,words", [
    ("password_changed", "en", "password was changed"), ("password_reset", "ru", "сброшен"),
    ("withdrawal_requested", "en", "Confirm where to pay"), ("withdrawal_requested", "ru", "Подтвердите счёт")])
def test_the_notifier_sends_each_notice_once_and_the_log_hides_the_link(notifier_store, notice, language, words):
    data = {"account_id": 7, "email": "acct-%s@example.com" % uuid.uuid4().hex[:8], "language": language,
            "notice": notice, "key": "%s:%s" % (notice, uuid.uuid4().hex)}
    if notice == "withdrawal_requested":
        data.update(withdrawal={"id": 5, "amount": "12.5", "currency": "USDT", "to_account": "CAROL"},
                    link="https://exchanger.example/account/destination?token=Sekret_%s" % uuid.uuid4().hex,
                    expires_at=(datetime.datetime.now(datetime.timezone.utc)
                                + datetime.timedelta(hours=24)).isoformat())
    loaded = AccountNoticeSchema().load(data)
    event_id = str(uuid.uuid4())
    first = notifier_store.consume_account_notice("notifier.test", event_id, loaded)
    assert len(first["queued"]) == 1
    assert notifier_store.consume_account_notice("notifier.test", event_id, loaded)["duplicate"] is True
    assert notifier_store.consume_account_notice("notifier.test", str(uuid.uuid4()), loaded)["queued"] == []
    row = notifier_store.db.fetchone("SELECT * FROM notifications WHERE id = %s", (first["queued"][0],))
    assert words in row["subject"] and row["recipient"] == data["email"] and row["audience"] == "customer"
    if notice == "withdrawal_requested":
        # the link is stored apart until the letter is sent (docs/security.md), the letter holds a placeholder
        assert data["link"] not in row["body_text"] and "[one-time link]" in row["body_text"]
        assert row["secret_link"] == data["link"]
        assert "12.5 USDT" in row["body_text"] and "CAROL" in row["body_html"]
        wire = notification_to_wire(row)
        assert "Sekret_" not in wire["body_text"] and "Sekret_" not in wire["body_html"]
