"""The pure rules of hardened accounts (services/orders/domain/accounts.py, docs/security.md): common passwords
refused, sign-in delays, TOTP steps accepted once."""
import pyotp
import pytest

from services.orders.domain import RuleError
from services.orders.domain import accounts as rules


@pytest.mark.parametrize("password", ["password1234", "qwertyuiop", "1q2w3e4r5t", "iloveyou12", "Password123!",
                                      "1234567890", "aaaaaaaaaaaa"])
def test_common_or_simple_passwords_are_refused_naming_the_field(password):
    with pytest.raises(RuleError) as info:
        rules.check_password(password)
    assert list(info.value.fields) == ["password"]


@pytest.mark.parametrize("password", ["a good long password", "partner password 123", "correct-horse-battery-9",
                                      "Zq8#kd93!mPw"])
def test_long_uncommon_passwords_pass(password):
    rules.check_password(password, ("someone@example.com",))


def test_a_password_made_of_the_email_is_refused():
    rules.check_password("marvinzucker1")                   # fine for somebody else
    with pytest.raises(RuleError):
        rules.check_password("marvinzucker1", ("marvinzucker@example.com",))


def test_very_long_passwords_are_scored_on_their_start_and_capped():
    rules.check_password("a good long password " * 12)      # 252 characters: scored quickly, accepted
    with pytest.raises(RuleError) as info:
        rules.check_password("x" * 257)
    assert "at most" in info.value.fields["password"][0]


def test_sign_in_delays_are_free_then_doubling_up_to_the_cap():
    policy = rules.SignInPolicy(free=5, base_seconds=2, max_seconds=60)
    assert [policy.delay_after(n) for n in range(1, 12)] == [0, 0, 0, 0, 0, 2, 4, 8, 16, 32, 60]
    assert policy.delay_after(10**6) == 60                  # no overflow for a long attack


def test_throttle_key_folds_case_and_spaces_and_takes_anything():
    assert rules.throttle_key("  Someone@Example.COM ") == "someone@example.com"
    assert rules.throttle_key(None) == "" and rules.throttle_key(42) == ""


def test_a_totp_step_is_accepted_once_with_one_step_of_drift():
    secret = pyotp.random_base32()
    totp = pyotp.TOTP(secret)
    now = 1_700_000_000
    step = now // 30
    assert rules.match_totp(secret, totp.at(now), 0, now) == step
    assert rules.match_totp(secret, totp.at(now), step, now) is None          # replay
    assert rules.match_totp(secret, totp.at(now + 30), step, now) == step + 1  # the next one, early
    assert rules.match_totp(secret, totp.at(now - 60), 0, now) is None        # too old
    for bad in ("", None, "12345", "abcdef", 123456):
        assert rules.match_totp(secret, bad, 0, now) is None
    assert rules.match_totp(secret, " %s " % totp.at(now)[:3] + totp.at(now)[3:], 0, now) == step


def test_the_openapi_document_builds_with_the_account_security_routes():
    from gateway.openapi import build_spec
    paths = build_spec().to_dict()["paths"]
    for path in ("/api/v1/account/password", "/api/v1/account/totp", "/api/v1/account/totp/confirm",
                 "/api/v1/account/totp/disable", "/api/v1/account/destinations/confirm"):
        assert "post" in paths[path], path
    login = paths["/api/v1/account/token"]["post"]
    assert "429" in login["responses"]
