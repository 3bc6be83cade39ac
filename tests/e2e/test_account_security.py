"""End to end: customer and partner accounts hardened (docs/security.md, "Customer and partner accounts"), driven
over HTTP against the system as `make run` starts it, letters read from the Procfile's dev SMTP server:
parallel wrong sign-ins evaluated at most ACCOUNT_SIGNIN_FREE_FAILURES + 1 times, common passwords refused with a
422 naming the field, the sign-up link useless to whoever started someone else's sign-up, letters on a password
change and on a withdrawal, a new destination confirmed by the letter's link before an approval, TOTP with
replay refused, API tokens ending when idle."""
import concurrent.futures
import re
import time

import pyotp
import pytest
import requests

from tests.conftest import eventually
from tests.e2e.notifier_support import Mail, text_of
from tests.e2e.partners_support import (PASSWORD, balance, clear_direction_rule, complete_manual, letter_link,
                                        new_partner, order_as_visitor, set_direction_rule, sign_in, sign_up,
                                        unique_email, visit_link)

FREE_FAILURES = 5   # ACCOUNT_SIGNIN_FREE_FAILURES's default
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def ten_percent_of_the_amount(system, admin_token, directions):
    """EUR -> USDT manual, 10 % of the amount: 100 EUR (107 USDT) earns the partner 10.7 USDT."""
    direction = directions["manual"]
    set_direction_rule(system, admin_token, direction, "10", "amount")
    yield direction
    clear_direction_rule(system, admin_token, direction)


def token_request(system, email, password, **extra):
    return requests.post(system.url + "/api/v1/account/token", timeout=60,
                         json=dict({"email": email, "password": password}, **extra))


def test_parallel_wrong_sign_ins_are_evaluated_at_most_the_free_failures_plus_one(system):
    person = sign_up(system)

    def wrong(i):
        return token_request(system, person["email"], "wrong password %d" % i)
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(wrong, range(20)))   # 20 at once: more than the gateway has threads
    codes = [r.status_code for r in responses]
    # 503: the gateway stopped waiting for orders (RPC timeout) on a busy machine; the audit below counts what
    # orders evaluated whatever the gateway answered
    assert set(codes) <= {401, 429, 503}, [r.text for r in responses]
    assert codes.count(401) <= FREE_FAILURES + 1, codes
    throttled = [r for r in responses if r.status_code == 429]
    assert throttled and all(int(r.headers["Retry-After"]) >= 1 for r in throttled)
    evaluated = system.sql("SELECT count(*) AS n FROM orders.audit_log WHERE action = 'account_sign_in' AND "
                           "actor = %s AND outcome = 'failed'", ("account:%s" % person["account"]["id"],))[0]["n"]
    assert codes.count(401) <= evaluated <= FREE_FAILURES + 1
    # while blocked, even the right password waits (the owner elsewhere is not: tests/interface/partners/
    # test_account_hardening.py, every e2e client here is 127.0.0.1); a session already open keeps working
    blocked = token_request(system, person["email"], PASSWORD)
    assert blocked.status_code == 429 and blocked.json()["error"] == "too_many_requests"
    assert system.api("GET", "/api/v1/account", token=person["token"]).status_code == 200


def test_common_passwords_are_refused_with_a_422_naming_the_field(system):
    for password in ("password1234", "qwertyuiop", "1q2w3e4r5t6y"):
        r = system.api("POST", "/api/v1/account/signup", json={"email": unique_email(), "password": password})
        assert r.status_code == 422 and "password" in r.json()["fields"], r.text
    person = sign_up(system)
    r = system.api("POST", "/api/v1/account/password", token=person["token"],
                   json={"current_password": PASSWORD, "password": "iloveyou1234"})
    assert r.status_code == 422 and "too common" in r.json()["fields"]["password"][0]


def test_the_sign_up_link_is_useless_to_whoever_started_someone_elses_sign_up(system):
    victim = unique_email("victim")
    r = system.api("POST", "/api/v1/account/signup", json={"email": victim, "password": "the attackers choice 1"})
    assert r.status_code == 202
    url, token, _ = letter_link(system, victim, "SIGNUP")
    page = system.http.get(url, timeout=30)
    assert page.status_code == 200 and 'name="password"' in page.text      # the page asks for the password
    # the mailbox owner did not sign up: whatever they type, the account is not confirmed with the attacker's
    r = system.api("POST", "/api/v1/account/confirm", json={"token": token, "password": "the victims own 12"})
    assert r.status_code == 422 and r.json()["fields"] == {"password": ["not the password chosen at this sign-up"]}
    assert system.api("POST", "/api/v1/account/confirm", json={"token": token}).status_code == 422
    assert token_request(system, victim, "the attackers choice 1").status_code == 403   # still unconfirmed
    assert system.sql("SELECT email_confirmed_at FROM orders.accounts WHERE email = %s",
                      (victim,))[0]["email_confirmed_at"] is None


def test_a_password_change_ends_other_sessions_and_sends_a_letter(system):
    person = sign_up(system)
    other = sign_in(system, person["email"])
    r = system.api("POST", "/api/v1/account/password", token=person["token"],
                   json={"current_password": "not it at all", "password": "a brand new secret 7"})
    assert r.status_code == 422 and "current_password" in r.json()["fields"]
    r = system.api("POST", "/api/v1/account/password", token=person["token"],
                   json={"current_password": PASSWORD, "password": "a brand new secret 7"})
    assert r.status_code == 200, r.text
    assert system.api("GET", "/api/v1/account", token=person["token"]).status_code == 200   # this one stays
    assert system.api("GET", "/api/v1/account", token=other).status_code == 401
    letter = eventually(lambda: next((m for m in Mail(system).letters(to=person["email"])
                                      if m["X-Exchanger-Kind"] == "PASSWORD"), None), timeout=30,
                        message="PASSWORD letter")
    assert "changed" in letter["Subject"] and "reset your password" in text_of(letter)
    assert sign_in(system, person["email"], "a brand new secret 7")


def test_a_new_destination_is_paid_only_after_the_link_in_the_withdrawal_letter(system, admin_token,
                                                                                ten_percent_of_the_amount):
    r = system.api("PUT", "/api/v1/admin/commission", token=admin_token, json={"min_withdrawal": "1"})
    assert r.status_code == 200, r.text
    partner = new_partner(system)
    complete_manual(system, admin_token, order_as_visitor(system, visit_link(system, partner["link"]),
                                                          ten_percent_of_the_amount))
    eventually(lambda: balance(system, partner) == "10.7")
    r = system.api("POST", "/api/v1/partner/withdrawals", token=partner["token"],
                   json={"amount": "3", "currency": "USDT", "to_account": "THIEF-OR-NOT"})
    assert r.status_code == 201 and r.json()["destination_confirmed"] is False, r.text
    w = r.json()
    url, token, letter = letter_link(system, partner["email"], "WITHDRAWAL")
    assert url.startswith(system.env["PUBLIC_URL"] + "/account/destination?token=")
    assert "3 USDT" in text_of(letter) and "THIEF-OR-NOT" in text_of(letter)

    refused = system.api("POST", "/api/v1/admin/withdrawals/%s/approve" % w["id"], token=admin_token,
                         json={"method": "manual", "reference": "TX-1"})
    assert refused.status_code == 409 and "to_account" in refused.json()["fields"], refused.text
    listed = system.api("GET", "/api/v1/admin/withdrawals", token=admin_token,
                        params={"partner_id": w["partner_id"]}).json()["items"]
    assert [x["destination_confirmed"] for x in listed if x["id"] == w["id"]] == [False]
    # the log never shows the link; opening it (GET) confirms nothing
    logged = system.api("GET", "/api/v1/admin/notifications", token=admin_token,
                        params={"recipient": partner["email"], "kind": "WITHDRAWAL"}).json()["items"]
    assert logged and token not in str(logged)
    page = system.http.get(url, timeout=30)
    assert page.status_code == 200 and 'id="confirm-destination"' in page.text
    assert system.api("POST", "/api/v1/admin/withdrawals/%s/approve" % w["id"], token=admin_token,
                      json={"method": "manual", "reference": "TX-1"}).status_code == 409

    r = system.api("POST", "/api/v1/account/destinations/confirm", json={"token": token})
    assert r.status_code == 200 and r.json() == {"currency": "USDT", "to_account": "THIEF-OR-NOT", "confirmed": True}
    again = system.api("POST", "/api/v1/account/destinations/confirm", json={"token": token})
    assert again.status_code == 422 and "token" in again.json()["fields"]         # once only
    r = system.api("POST", "/api/v1/admin/withdrawals/%s/approve" % w["id"], token=admin_token,
                   json={"method": "manual", "reference": "TX-1"})
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    # every withdrawal request is a letter; a confirmed destination's carries no link
    r = system.api("POST", "/api/v1/partner/withdrawals", token=partner["token"],
                   json={"amount": "1", "currency": "USDT", "to_account": "THIEF-OR-NOT"})
    assert r.status_code == 201 and r.json()["destination_confirmed"] is True

    def two_letters():
        letters = [m for m in Mail(system).letters(to=partner["email"]) if m["X-Exchanger-Kind"] == "WITHDRAWAL"]
        return letters if len(letters) == 2 else None
    letters = eventually(two_letters, timeout=30, message="two WITHDRAWAL letters")
    assert sum("/account/destination?token=" in text_of(m) for m in letters) == 1


def test_totp_for_an_account_the_code_is_asked_and_works_once(system):
    person = sign_up(system)
    started = system.api("POST", "/api/v1/account/totp", token=person["token"], json={})
    assert started.status_code == 200, started.text
    totp = pyotp.TOTP(started.json()["secret"])
    step = int(time.time()) // 30
    r = system.api("POST", "/api/v1/account/totp/confirm", token=person["token"], json={"code": totp.at(step * 30)})
    assert r.status_code == 200 and r.json()["totp_enabled"] is True, r.text
    assert system.api("GET", "/api/v1/account", token=person["token"]).json()["totp_enabled"] is True

    no_code = token_request(system, person["email"], PASSWORD)
    assert no_code.status_code == 401 and no_code.json()["error"] == "totp_required"
    code = totp.at((step + 1) * 30)
    r = token_request(system, person["email"], PASSWORD, code=code)
    assert r.status_code == 200 and r.json()["token"].startswith("acc_"), r.text
    replay = token_request(system, person["email"], PASSWORD, code=code)
    assert replay.status_code == 401 and replay.json()["error"] == "unauthorized"
    # the cabinet's sign-in page asks for the code too, and takes it (the next unused step: wait for its window)
    while int(time.time()) // 30 < step + 1:
        time.sleep(1)
    browser = requests.Session()
    form = browser.get(system.url + "/account/signin?lang=en", timeout=30)
    csrf = CSRF_RE.search(form.text).group(1)
    asked = browser.post(system.url + "/account/signin", timeout=30, allow_redirects=False,
                         data={"csrf_token": csrf, "email": person["email"], "password": PASSWORD})
    assert asked.status_code == 200 and 'id="code"' in asked.text and "Two-factor codes are on" in asked.text
    csrf = CSRF_RE.search(asked.text).group(1)
    done = browser.post(system.url + "/account/signin", timeout=30, allow_redirects=False,
                        data={"csrf_token": csrf, "email": person["email"], "password": PASSWORD,
                              "code": totp.at((step + 2) * 30)})
    assert done.status_code == 303 and done.headers["Location"].endswith("/account/"), done.text
    assert 'data-enabled="true"' in browser.get(system.url + "/account/", timeout=30).text


def test_account_api_tokens_end_when_idle_and_each_use_moves_the_idle_clock(system):
    person = sign_up(system)
    digest_sql = "encode(sha256(convert_to(%s, 'UTF8')), 'hex')"
    system.sql("UPDATE orders.account_sessions SET last_seen_at = now() - interval '50 minutes' "
               "WHERE token_hash = " + digest_sql, (person["token"],))
    assert system.api("GET", "/api/v1/account", token=person["token"]).status_code == 200   # within the hour
    [row] = system.sql("SELECT now() - last_seen_at < interval '1 minute' AS fresh FROM orders.account_sessions "
                       "WHERE token_hash = " + digest_sql, (person["token"],))
    assert row["fresh"] is True                                                             # refreshed on use
    system.sql("UPDATE orders.account_sessions SET last_seen_at = now() - interval '61 minutes' "
               "WHERE token_hash = " + digest_sql, (person["token"],))
    assert system.api("GET", "/api/v1/account", token=person["token"]).status_code == 401   # idle: ended
    assert system.api("GET", "/api/v1/account", token=person["token"]).status_code == 401


def _form_post(browser, system, path, page_text, **data):
    csrf = CSRF_RE.search(page_text).group(1)
    return browser.post(system.url + path, timeout=30, allow_redirects=False, data=dict(data, csrf_token=csrf))


def test_the_cabinet_pages_confirm_with_the_password_enrol_totp_and_change_the_password(system):
    """The same steps through the server-rendered pages (forms with their CSRF token, no JavaScript needed)."""
    email = unique_email("pages")
    browser = requests.Session()
    signup = browser.get(system.url + "/account/signup?lang=en", timeout=30)
    assert _form_post(browser, system, "/account/signup", signup.text, email=email, password=PASSWORD).status_code \
        == 200
    url, _, _ = letter_link(system, email, "SIGNUP")
    confirm = browser.get(url, timeout=30)
    wrong = _form_post(browser, system, "/account/confirm", confirm.text, token=url.split("token=")[1],
                       password="not what I chose 1")
    assert wrong.status_code == 422 and "not the password chosen" in wrong.text
    done = _form_post(browser, system, "/account/confirm", wrong.text, token=url.split("token=")[1],
                      password=PASSWORD)
    assert done.status_code == 303, done.text
    signin = browser.get(system.url + "/account/signin", timeout=30)
    assert _form_post(browser, system, "/account/signin", signin.text, email=email,
                      password=PASSWORD).status_code == 303
    home = browser.get(system.url + "/account/", timeout=30)
    assert 'data-enabled="false"' in home.text

    enrol = _form_post(browser, system, "/account/totp", home.text)
    assert enrol.status_code == 200 and 'id="totp-secret"' in enrol.text and "<svg" in enrol.text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', enrol.text).group(1)
    on = _form_post(browser, system, "/account/totp/confirm", enrol.text, code=pyotp.TOTP(secret).now())
    assert on.status_code == 303
    home = browser.get(system.url + "/account/", timeout=30)
    assert 'data-enabled="true"' in home.text and "Two-factor codes are on." in home.text

    weak = _form_post(browser, system, "/account/password", home.text, current_password=PASSWORD,
                      password="qwerty123456")
    assert weak.status_code == 303
    home = browser.get(system.url + "/account/", timeout=30)
    assert "too common" in home.text
    changed = _form_post(browser, system, "/account/password", home.text, current_password=PASSWORD,
                         password="my cabinet secret 5")
    assert changed.status_code == 303
    assert "password is changed" in browser.get(system.url + "/account/", timeout=30).text   # this session stays
    eventually(lambda: [m for m in Mail(system).letters(to=email) if m["X-Exchanger-Kind"] == "PASSWORD"],
               timeout=30, message="PASSWORD letter")


def test_sign_up_and_reset_letters_to_one_address_stop_at_the_limit_with_a_429_whatever_the_client(system):
    """ACCOUNT_LETTER_RATE_LIMIT (5 per hour): one count per e-mail shared by sign-up and reset, through the API and
    the cabinet's form, from any client address (X-Forwarded-For: the suite trusts one proxy)."""
    email = unique_email("letters")
    answers = []
    answers.append(requests.post(system.url + "/api/v1/account/signup", timeout=60,
                                 headers={"X-Forwarded-For": "198.51.100.10"},
                                 json={"email": email, "password": "a long and unusual passphrase"}))
    for i in range(4):
        answers.append(requests.post(system.url + "/api/v1/account/password-reset", timeout=60,
                                     headers={"X-Forwarded-For": "198.51.100.%d" % (20 + i)}, json={"email": email}))
    assert [r.status_code for r in answers if r.status_code >= 400] == [], [r.text for r in answers]
    refused = requests.post(system.url + "/api/v1/account/password-reset", timeout=60,
                            headers={"X-Forwarded-For": "198.51.100.30"}, json={"email": email})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0, refused.text
    page = requests.Session()
    form = page.get(system.url + "/account/reset", headers={"X-Forwarded-For": "198.51.100.31"}, timeout=60)
    csrf = CSRF_RE.search(form.text).group(1)
    again = page.post(system.url + "/account/reset", timeout=60, headers={"X-Forwarded-For": "198.51.100.31"},
                      data={"csrf_token": csrf, "email": email.upper()})
    assert again.status_code == 429
    # another address is not held back by it
    other = requests.post(system.url + "/api/v1/account/password-reset", timeout=60, json={"email": unique_email("x")})
    assert other.status_code < 400, other.text
