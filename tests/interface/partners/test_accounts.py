"""Customer accounts in the real orders service and database: sign-up with e-mail confirmation (the token only in
the event, its hash in the table), sign-in sessions, password reset, and the account's exchanges joined by e-mail."""
import hashlib
import secrets

import pytest

from libs import errors
from tests.interface.partners.conftest import (call, confirmed_account, manual_direction, token_from_outbox,
                                               unique_email)


def session(orders, email, password, kind="api"):
    raw = secrets.token_urlsafe(32)
    result = call(orders, "account_sign_in", email, password, hashlib.sha256(raw.encode()).hexdigest(), kind, 3600,
                  "127.0.0.1")
    return raw, result


def me(orders, raw):
    return call(orders, "account_for_session", hashlib.sha256(raw.encode()).hexdigest())


def test_sign_up_confirm_and_sign_in(orders, sql):
    email = unique_email()
    assert call(orders, "account_signup", email, "first password 123", "ru") == {"letter": True}
    account_id = sql("SELECT id FROM orders.accounts WHERE email = %s", (email,))[0]["id"]
    event = sql("SELECT payload FROM orders.outbox WHERE event_type = 'account_signup_requested' AND aggregate_id = %s",
                ("account:%s" % account_id,))[0]["payload"]["data"]
    assert event["email"] == email and event["language"] == "ru" and "/account/confirm?token=" in event["confirm_url"]
    token = token_from_outbox(sql, "account_signup_requested", account_id, "confirm_url")
    stored = sql("SELECT token_hash, password_hash FROM orders.account_tokens WHERE account_id = %s", (account_id,))
    assert stored[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()      # only the hash is kept
    assert token not in str(stored) and stored[0]["password_hash"].startswith("$argon2id$")

    _, result = session(orders, email, "first password 123")
    assert result == {"ok": False, "reason": "unconfirmed"}
    # someone signs up again with the same address before it is confirmed: whoever confirms from the mailbox
    # gets the password of the letter they open
    call(orders, "account_signup", email.upper(), "second password 456", "en")
    second = token_from_outbox(sql, "account_signup_requested", account_id, "confirm_url")
    with pytest.raises(errors.ValidationFailed) as info:
        call(orders, "account_confirm", second, "first password 123")   # the link confirms its own sign-up only
    assert "password" in info.value.fields
    account = call(orders, "account_confirm", second, "second password 456")
    assert account["email_confirmed"] and account["id"] == account_id and account["partner"] is None
    with pytest.raises(errors.ValidationFailed):
        call(orders, "account_confirm", token, "first password 123")   # the other link ended with the confirmation
    with pytest.raises(errors.ValidationFailed):
        call(orders, "account_confirm", second, "second password 456")   # and a link works once
    assert session(orders, email, "first password 123")[1] == {"ok": False, "reason": "invalid"}
    raw, result = session(orders, email, "second password 456")
    assert result["ok"] and result["account"]["email"] == email
    assert me(orders, raw)["id"] == account_id
    assert call(orders, "account_sign_out", hashlib.sha256(raw.encode()).hexdigest()) is True
    assert me(orders, raw) is None
    # signing up again with a confirmed address sends nothing (and the caller cannot tell)
    before = sql("SELECT count(*) AS n FROM orders.outbox WHERE aggregate_id = %s", ("account:%s" % account_id,))
    assert call(orders, "account_signup", email, "third password 789", "en") == {"letter": False}
    assert sql("SELECT count(*) AS n FROM orders.outbox WHERE aggregate_id = %s",
               ("account:%s" % account_id,)) == before


def test_bad_input_and_unknown_accounts(orders, sql):
    with pytest.raises(errors.ValidationFailed) as info:
        call(orders, "account_signup", "not-an-email", "a good long password", "en")
    assert "email" in info.value.fields
    with pytest.raises(errors.ValidationFailed) as info:
        call(orders, "account_signup", unique_email(), "short", "en")
    assert "password" in info.value.fields
    assert session(orders, unique_email(), "whatever password")[1] == {"ok": False, "reason": "invalid"}
    assert call(orders, "account_password_reset_request", unique_email()) == {"letter": False}
    for bad in ("x", "y" * 40, None):
        with pytest.raises(errors.ValidationFailed):
            call(orders, "account_confirm", bad, "a good long password")
    assert me(orders, "nothing") is None
    # a repeated call (nameko may run an RPC twice) sends one letter
    email = unique_email()
    call(orders, "account_signup", email, "a good long password", "en", "req-%s" % email)
    call(orders, "account_signup", email, "a good long password", "en", "req-%s" % email)
    assert sql("SELECT count(*) AS n FROM orders.account_tokens t JOIN orders.accounts a ON a.id = t.account_id "
               "WHERE a.email = %s", (email,))[0]["n"] == 1


def test_password_reset_ends_every_session(orders, sql):
    account = confirmed_account(orders, sql)
    raw_api, _ = session(orders, account["email"], account["password"])
    raw_web, _ = session(orders, account["email"], account["password"], "web")
    assert call(orders, "account_password_reset_request", account["email"].upper()) == {"letter": True}
    token = token_from_outbox(sql, "password_reset_requested", account["id"], "reset_url")
    with pytest.raises(errors.ValidationFailed) as info:
        call(orders, "account_password_reset", token, "short")
    assert "password" in info.value.fields
    call(orders, "account_password_reset", token, "a brand new password")
    assert me(orders, raw_api) is None and me(orders, raw_web) is None
    assert session(orders, account["email"], account["password"])[1]["ok"] is False
    assert session(orders, account["email"], "a brand new password")[1]["ok"] is True
    with pytest.raises(errors.ValidationFailed):
        call(orders, "account_password_reset", token, "yet another password")     # once only
    # an expired link does nothing
    call(orders, "account_password_reset_request", account["email"])
    late = token_from_outbox(sql, "password_reset_requested", account["id"], "reset_url")
    sql("UPDATE orders.account_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = %s",
        (hashlib.sha256(late.encode()).hexdigest(),))
    with pytest.raises(errors.ValidationFailed):
        call(orders, "account_password_reset", late, "yet another password")


def test_idle_and_expired_sessions_end(orders, sql):
    account = confirmed_account(orders, sql)
    raw, _ = session(orders, account["email"], account["password"], "web")
    digest = hashlib.sha256(raw.encode()).hexdigest()
    sql("UPDATE orders.account_sessions SET last_seen_at = now() - interval '2 hours' WHERE token_hash = %s",
        (digest,))
    assert call(orders, "account_for_session", digest, 3600) is None          # idle longer than an hour
    raw, _ = session(orders, account["email"], account["password"])
    digest = hashlib.sha256(raw.encode()).hexdigest()
    sql("UPDATE orders.account_sessions SET expires_at = now() WHERE token_hash = %s", (digest,))
    assert call(orders, "account_for_session", digest) is None


def test_orders_with_the_confirmed_email_join_the_account(orders, sql):
    email = unique_email("joiner")
    direction = manual_direction(orders)
    before = call(orders, "create_order", {"direction_id": direction["id"], "amount_in": "50",
                                           "email": email.upper(), "recipient": "W"})   # placed as a guest, earlier
    other = call(orders, "create_order", {"direction_id": direction["id"], "amount_in": "50",
                                          "email": unique_email("other"), "recipient": "W"})
    account = confirmed_account(orders, sql, email=email)
    after = call(orders, "create_order", {"direction_id": direction["id"], "amount_in": "60", "email": email,
                                          "recipient": "W"})
    mine = call(orders, "account_orders", account["id"])
    assert [o["id"] for o in mine["items"]] == [after["id"], before["id"]]   # not `other`
    page = call(orders, "account_orders", account["id"], 1)
    assert [o["id"] for o in page["items"]] == [after["id"]] and page["next_cursor"] == str(after["id"])
    assert [o["id"] for o in call(orders, "account_orders", account["id"], 1, page["next_cursor"])["items"]] == \
        [before["id"]]
    # an account that has not confirmed its e-mail sees nothing
    stranger = unique_email("stranger")
    call(orders, "create_order", {"direction_id": direction["id"], "amount_in": "50", "email": stranger,
                                  "recipient": "W"})
    call(orders, "account_signup", stranger, "a good long password", "en")
    sid = sql("SELECT id FROM orders.accounts WHERE email = %s", (stranger,))[0]["id"]
    assert call(orders, "account_orders", sid)["items"] == []


def test_becoming_a_partner_needs_a_confirmed_account_and_is_idempotent(orders, sql):
    account = confirmed_account(orders, sql)
    first = call(orders, "become_partner", account["id"])
    again = call(orders, "become_partner", account["id"])
    assert first["created"] is True and again["created"] is False and first["partner"] == again["partner"]
    email = unique_email()
    call(orders, "account_signup", email, "a good long password", "en")
    unconfirmed = sql("SELECT id FROM orders.accounts WHERE email = %s", (email,))[0]["id"]
    with pytest.raises(errors.Forbidden):
        call(orders, "become_partner", unconfirmed)
    with pytest.raises(errors.NotFound):
        call(orders, "partner_overview", unconfirmed)
