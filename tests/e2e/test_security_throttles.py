"""Throttles and lockout over HTTP against the running system (docs/security.md, "Throttles and lockout"):
orders per e-mail answer 429 with Retry-After and the letters to that address stop at the cap (counted at the
real SMTP server); parallel wrong codes evaluate at most the lockout threshold; an attacker spraying a username
from many addresses does not lock its owner out of a known address; the CLI unlocks; the public order shows no
staff name. The e2e system trusts one proxy (TRUSTED_PROXIES=1), so X-Forwarded-For plays other clients."""
import concurrent.futures
import re
import subprocess
import sys
import time
import uuid

import requests

from tests.conftest import ROOT, eventually
from tests.e2e.notifier_support import Mail

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
LOCKOUT_THRESHOLD = 5          # GATEWAY_LOCKOUT_THRESHOLD (default)
LOCKOUT_USER_THRESHOLD = 20    # GATEWAY_LOCKOUT_USER_THRESHOLD (default)


def first_limit(text):
    """The count of the first limit in flask-limiter notation, e.g. "20 per minute;..." -> 20."""
    return int(text.split(";")[0].split()[0])


def make_staff(system, role="operator", totp_required=True):
    username = "thr-%s-%s" % (role, uuid.uuid4().hex[:8])
    password = "pw-%s-long-enough" % uuid.uuid4().hex[:8]
    r = system.sensitive("POST", "/api/v1/admin/staff", token=system.login(), json={
        "username": username, "password": password, "role": role, "totp_required": totp_required})
    assert r.status_code == 201, r.text
    return username, password


def from_address(ip):
    return {"X-Forwarded-For": ip}


def test_sixty_orders_for_one_email_get_429_and_at_most_the_cap_of_letters(system, directions):
    threshold = first_limit(system.env["GATEWAY_ORDER_RATE_LIMIT_EMAIL"])
    cap = int(system.env["NOTIFIER_LETTERS_PER_RECIPIENT_HOUR"])
    email = "flood-%s@example.com" % uuid.uuid4().hex[:8]
    d = directions["manual"]
    statuses, retry_after = [], None
    for i in range(60):  # one script, one minute, each from another address: the e-mail is what is limited
        r = system.api("POST", "/api/v1/orders", headers=from_address("10.60.%d.%d" % (i // 200, i % 200 + 1)),
                       json={"direction_id": d["id"], "amount_in": d["min_amount"], "email": email,
                             "recipient": "W-%d" % i})
        statuses.append(r.status_code)
        if r.status_code == 429:
            retry_after = retry_after or r.headers.get("Retry-After")
            assert r.json()["error"] == "too_many_requests"
    # Every attempt counts (a refused one too): the first `threshold` pass the throttle, every later one is 429.
    assert 429 not in statuses[:threshold] and statuses[threshold:] == [429] * (60 - threshold), statuses
    created = statuses.count(201)
    assert created >= 1, statuses
    assert retry_after is not None and int(retry_after) > 0
    # The exchange form says the same, with a 429 and Retry-After.
    s = requests.Session()
    page = s.get(system.url + "/")
    r = s.post(system.url + "/exchange", data={"csrf_token": CSRF_RE.search(page.text).group(1),
                                               "direction_id": d["id"], "amount_in": d["min_amount"],
                                               "email": email, "recipient": "W-form"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # Letters: the notifier sent at most the cap to that address (the rest are kept in the log as capped).
    rows = eventually(lambda: (rs := system.sql(
        "SELECT status FROM notifier.notifications WHERE recipient = %s", (email,))) and len(rs) == created and rs,
        timeout=60, message="every order's letter decided")
    assert sum(r["status"] != "capped" for r in rows) == min(cap, created)
    mail = Mail(system)
    eventually(lambda: len(mail.letters(to=email)) == min(cap, created), timeout=60, message="letters delivered")
    time.sleep(1)
    assert len(mail.letters(to=email)) == min(cap, created)


def test_forty_parallel_wrong_codes_evaluate_at_most_the_threshold(system):
    username, password = make_staff(system)
    token = system.login(username, password)  # enrols TOTP from 127.0.0.1, which becomes a known address
    attacker = from_address("10.40.0.%d" % (uuid.uuid4().int % 200 + 1))

    def guess(i):
        return system.http.post(system.url + "/api/v1/auth/token", headers=attacker, timeout=30,
                                json={"username": username, "password": password, "code": "%06d" % (i * 7919 % 10**6)})
    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(guess, range(40)))
    statuses = [a.status_code for a in answers]
    evaluated = statuses.count(401)
    assert 1 <= evaluated <= LOCKOUT_THRESHOLD, statuses
    assert set(statuses) <= {401, 423, 429}, statuses
    assert all(int(a.headers["Retry-After"]) > 0 for a in answers if a.status_code == 423)
    audited = system.sql("SELECT count(*) AS n FROM gateway.audit_log WHERE actor = %s AND action = 'sign_in' "
                         "AND outcome = 'failed'", (username,))[0]["n"]
    assert audited == evaluated
    # The attacker's address stays locked, even with the right code; the owner's token still works, and the
    # owner signs in from the known address.
    r = system.api("POST", "/api/v1/auth/token", headers=attacker, json={
        "username": username, "password": password, "code": system.totp_code(username)})
    assert r.status_code in (423, 429), r.text
    assert system.api("GET", "/api/v1/auth/me", token=token).status_code == 200
    r = system.api("POST", "/api/v1/auth/token", json={"username": username, "password": password,
                                                       "code": system.totp_code(username)})
    assert r.status_code == 200, r.text


def test_spraying_from_many_addresses_cannot_lock_the_owner_out_and_the_cli_unlocks(system):
    # an analyst: operators must enrol TOTP (GATEWAY_TOTP_REQUIRED_ROLES), and a password-only sign-in would leave
    # the owner's address unknown
    username, password = make_staff(system, role="analyst", totp_required=False)
    assert system.api("POST", "/api/v1/auth/token", json={"username": username, "password": password}).ok
    for i in range(LOCKOUT_USER_THRESHOLD + 5):
        r = system.api("POST", "/api/v1/auth/token", headers=from_address("10.77.%d.1" % i),
                       json={"username": username, "password": "wrong-%d" % i})
        assert r.status_code in (401, 423), r.text
    # The failures are recorded with the client's address, not the proxy's.
    ips = {r["actor_ip"] for r in system.sql(
        "SELECT actor_ip FROM gateway.audit_log WHERE actor = %s AND outcome = 'failed'", (username,))}
    assert "10.77.0.1" in ips and "127.0.0.1" not in ips
    # New addresses are turned away, even with the right password; the owner's known address is not.
    fresh = from_address("10.78.0.1")
    r = system.api("POST", "/api/v1/auth/token", headers=fresh, json={"username": username, "password": password})
    assert r.status_code == 423 and int(r.headers["Retry-After"]) > 0
    r = system.api("POST", "/api/v1/auth/token", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    # The operator lifts the lock from the command line.
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "unlock", username], cwd=ROOT, env=system.env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "unlocked" in out.stdout, out.stderr
    r = system.api("POST", "/api/v1/auth/token", headers=fresh, json={"username": username, "password": password})
    assert r.status_code == 200, r.text


def test_the_public_order_names_no_staff_member(system, directions):
    username, password = make_staff(system, role="operator", totp_required=False)
    token = system.login(username, password)
    d = directions["manual"]
    order = system.api("POST", "/api/v1/orders", json={
        "direction_id": d["id"], "amount_in": d["min_amount"], "recipient": "W-1",
        "email": "nostaff-%s@example.com" % uuid.uuid4().hex[:8]}).json()
    assert system.api("POST", "/api/v1/orders/%s/paid" % order["token"]).status_code == 200
    processed = system.api("POST", "/api/v1/admin/orders/%d/process" % order["id"], token=token,
                           json={"notice": "On its way."})
    assert processed.status_code == 200, processed.text
    public = system.api("GET", "/api/v1/orders/%s" % order["token"])
    assert public.status_code == 200
    assert username not in public.text and "actor" not in public.text
    assert [h["by"] for h in public.json()["history"]] == ["customer", "customer", "exchanger"]
    page = requests.get(system.url + "/orders/%s" % order["token"], timeout=30)
    assert page.status_code == 200 and username not in page.text
    # staff still see who did it
    detail = system.api("GET", "/api/v1/admin/orders/%d" % order["id"], token=system.login()).json()
    assert detail["history"][-1]["actor"] == username


def test_changing_ones_own_password_is_throttled(system):
    from tests.e2e.test_security_staff import browser_session, csrf_of
    username, password = make_staff(system, totp_required=False)
    s = browser_session(system, username, password)
    statuses = []
    for i in range(7):
        page = s.get(system.url + "/admin/account")
        r = s.post(system.url + "/admin/account/password", allow_redirects=False,
                   data={"csrf_token": csrf_of(page), "current": "wrong-%d" % i, "new": "pw-new-long-enough-1"})
        statuses.append(r.status_code)
    assert statuses[:5] == [303] * 5 and statuses[5:] == [429, 429], statuses


def test_an_email_with_a_nul_is_refused_not_a_server_error(system, directions):
    d = directions["manual"]
    r = system.api("POST", "/api/v1/orders", json={"direction_id": d["id"], "amount_in": d["min_amount"],
                                                   "email": "nul\x00@example.com", "recipient": "W"})
    assert r.status_code == 422, r.text
