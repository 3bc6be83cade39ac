"""Staff security over HTTP against the running gateway (docs/reliability.md, T25; docs/pages.md, "Staff security"):
CSRF, roles, brute force, sessions (rotation, sign-out, idle timeout), customer tokens, no admin route without a
session or token, security headers, audit and the new-address alert."""
import re
import uuid

import requests


CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(response):
    return CSRF_RE.search(response.text).group(1)


def make_staff(system, role, totp_required=False):
    username = "%s-%s" % (role, uuid.uuid4().hex[:8])
    password = "pw-%s-long-enough" % uuid.uuid4().hex[:8]
    r = system.sensitive("POST", "/api/v1/admin/staff", token=system.login(), json={
        "username": username, "password": password, "role": role, "totp_required": totp_required})
    assert r.status_code == 201, r.text
    return username, password


def browser_session(system, username, password):
    """Sign in through the pages like a browser (requests keeps the cookies); returns the session."""
    s = requests.Session()
    page = s.get(system.url + "/admin/login")
    r = s.post(system.url + "/admin/login", data={"username": username, "password": password,
                                                  "csrf_token": csrf_of(page)}, allow_redirects=False)
    assert r.status_code == 303, r.text
    if r.headers["Location"].endswith("/admin/enrol"):
        # Operators (and admins) must enrol a second factor at their first sign-in (docs/security.md).
        enrol = s.get(system.url + "/admin/enrol")
        system.totp_secrets[username] = re.search(r'id="totp-secret">([A-Z2-7]+)<', enrol.text).group(1)
        r = s.post(system.url + "/admin/enrol", data={"code": system.totp_code(username),
                                                      "csrf_token": csrf_of(enrol)}, allow_redirects=False)
        assert r.status_code == 303, r.text
    elif r.headers["Location"].endswith("/admin/login/code"):
        code_page = s.get(system.url + "/admin/login/code")
        r = s.post(system.url + "/admin/login/code", data={"code": system.totp_code(username),
                                                           "csrf_token": csrf_of(code_page)}, allow_redirects=False)
        assert r.status_code == 303, r.text
    assert r.headers["Location"].endswith("/admin/"), r.headers["Location"]
    return s


def staff_cookie(session):
    return session.cookies.get("exchanger_staff")


def manual_claimed(system, directions):
    d = directions["manual"]
    order = system.api("POST", "/api/v1/orders", json={"direction_id": d["id"], "amount_in": d["min_amount"],
                                                        "email": "sec-%s@example.com" % uuid.uuid4().hex[:6],
                                                        "recipient": "W-1"}).json()
    assert system.api("POST", "/api/v1/orders/%s/paid" % order["token"]).status_code == 200
    return order


def test_csrf_missing_or_wrong_is_rejected(system, directions):
    username, password = make_staff(system, "operator")
    s = requests.Session()
    page = s.get(system.url + "/admin/login")
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": csrf_of(page)[:-2] + "xx"}):
        r = s.post(system.url + "/admin/login", data=dict(data, username=username, password=password),
                   allow_redirects=False)
        assert r.status_code == 400, r.status_code
        assert staff_cookie(s) is None
    # Signed in, a page action without the token or with a token of another browser is refused and changes nothing.
    s = browser_session(system, username, password)
    other = requests.Session()
    foreign = csrf_of(other.get(system.url + "/admin/login"))
    order = manual_claimed(system, directions)
    for data in ({"text": "x"}, {"text": "x", "csrf_token": foreign}):
        r = s.post(system.url + "/admin/orders/%d/finalize" % order["id"], data=data, allow_redirects=False)
        assert r.status_code == 400
    assert system.api("GET", "/api/v1/orders/%s" % order["token"]).json()["status"] == "payment_claimed"
    # The customer's forms are protected the same way.
    r = requests.post(system.url + "/orders/%s/cancel" % order["token"], data={})
    assert r.status_code == 400
    # The bearer API needs no CSRF token: it never takes a cookie for a change (a cookie alone gets 401).
    r = s.post(system.url + "/api/v1/admin/orders/%d/finalize" % order["id"], json={})
    assert r.status_code == 401


def test_analyst_cannot_finalize(system, directions):
    username, password = make_staff(system, "analyst")
    order = manual_claimed(system, directions)
    token = system.login(username, password)
    r = system.api("POST", "/api/v1/admin/orders/%d/finalize" % order["id"], token=token, json={})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    s = browser_session(system, username, password)
    page = s.get(system.url + "/admin/orders")
    assert page.status_code == 200
    assert 'data-action="finalize"' not in page.text  # no icon for what the role may not do
    r = s.post(system.url + "/admin/orders/%d/finalize" % order["id"], data={"csrf_token": csrf_of(page)},
               allow_redirects=False)
    assert r.status_code == 403
    assert system.api("GET", "/api/v1/orders/%s" % order["token"]).json()["status"] == "payment_claimed"
    denied = system.sql("SELECT count(*) AS n FROM gateway.audit_log WHERE actor = %s AND outcome = 'denied'",
                        (username,))[0]["n"]
    assert denied >= 2


def test_brute_force_gets_429_and_locks_the_account(system):
    username, password = make_staff(system, "operator")
    statuses = []
    for i in range(14):
        r = system.api("POST", "/api/v1/auth/token", json={"username": username, "password": "wrong-%d" % i})
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[-1] == 429, statuses
    assert statuses[:5] == [401] * 5, statuses      # wrong passwords
    assert 423 in statuses, statuses                 # then the account is locked
    # The lock holds for the right password too, on the other sign-in door (its own rate-limit counter).
    s = requests.Session()
    page = s.get(system.url + "/admin/login")
    r = s.post(system.url + "/admin/login", data={"username": username, "password": password,
                                                  "csrf_token": csrf_of(page)}, allow_redirects=False)
    assert r.status_code == 423 and staff_cookie(s) is None
    rows = system.sql("SELECT action, outcome FROM gateway.audit_log WHERE actor = %s", (username,))
    assert sum(1 for r in rows if (r["action"], r["outcome"]) == ("sign_in", "failed")) >= 5
    assert ("lockout", "locked") in {(r["action"], r["outcome"]) for r in rows}
    # An admin unlocks it.
    staff_id = system.sql("SELECT id FROM gateway.staff WHERE username = %s", (username,))[0]["id"]
    assert system.api("POST", "/api/v1/admin/staff/%d/unlock" % staff_id, token=system.login(), json={}).ok
    assert system.sql("SELECT count(*) AS n FROM gateway.signin_throttles WHERE username = %s",
                      (username.lower(),))[0]["n"] == 0


def test_session_rotates_at_sign_in_and_dies_at_sign_out(system):
    username, password = make_staff(system, "operator", totp_required=True)
    s = requests.Session()
    s.cookies.set("exchanger_staff", "fixated-by-an-attacker", domain="127.0.0.1", path="/")
    page = s.get(system.url + "/admin/login")
    r = s.post(system.url + "/admin/login", data={"username": username, "password": password,
                                                  "csrf_token": csrf_of(page)}, allow_redirects=False)
    assert r.headers["Location"].endswith("/admin/enrol")
    pre = staff_cookie(s)
    assert pre and pre != "fixated-by-an-attacker"
    assert s.get(system.url + "/admin/", allow_redirects=False).headers["Location"].endswith("/admin/enrol")
    enrol = s.get(system.url + "/admin/enrol")
    found = re.search(r'id="totp-secret">([A-Z2-7]+)<', enrol.text)
    assert found, enrol.text[-1500:]
    secret = found.group(1)
    system.totp_secrets[username] = secret
    r = s.post(system.url + "/admin/enrol", data={"code": system.totp_code(username), "csrf_token": csrf_of(enrol)},
               allow_redirects=False)
    assert r.status_code == 303
    full = staff_cookie(s)
    assert full and full != pre                      # a new id once signed in
    assert s.get(system.url + "/admin/", allow_redirects=False).status_code == 200
    stale = requests.Session()
    stale.cookies.set("exchanger_staff", pre, path="/")
    assert stale.get(system.url + "/admin/", allow_redirects=False).status_code == 302
    # Sign out: the old cookie, replayed, opens nothing (pages or API reads).
    dash = s.get(system.url + "/admin/")
    assert s.post(system.url + "/admin/logout", data={"csrf_token": csrf_of(dash)},
                  allow_redirects=False).status_code == 303
    replay = requests.Session()
    replay.cookies.set("exchanger_staff", full, path="/")
    assert replay.get(system.url + "/admin/", allow_redirects=False).status_code == 302
    assert replay.get(system.url + "/api/v1/admin/orders").status_code == 401
    # TOTP is now required for the API too.
    r = system.api("POST", "/api/v1/auth/token", json={"username": username, "password": password})
    assert r.status_code == 401 and r.json()["error"] == "totp_required"
    assert system.login(username, password)


def test_idle_session_expires(system):
    username, password = make_staff(system, "analyst")
    s = browser_session(system, username, password)
    assert s.get(system.url + "/api/v1/admin/orders").status_code == 200  # GET reads take the session
    system.sql("UPDATE gateway.sessions SET last_seen_at = now() - interval '2 hours' "
               "WHERE staff_id = (SELECT id FROM gateway.staff WHERE username = %s)", (username,))
    assert s.get(system.url + "/admin/", allow_redirects=False).status_code == 302
    assert system.sql("SELECT revoked_reason FROM gateway.sessions WHERE staff_id = "
                      "(SELECT id FROM gateway.staff WHERE username = %s)", (username,))[0]["revoked_reason"] == "idle"


def test_a_customer_token_reads_only_its_own_order(system, directions):
    d = directions["auto"]
    a, b = [system.api("POST", "/api/v1/orders", json={"direction_id": d["id"], "amount_in": d["min_amount"],
                                                       "email": "tok-%d@example.com" % i, "recipient": "W-%d" % i}
                       ).json() for i in (1, 2)]
    assert system.api("GET", "/api/v1/orders/%s" % a["token"]).json()["id"] == a["id"]
    near = a["token"][:-1] + ("A" if a["token"][-1] != "A" else "B")
    assert system.api("GET", "/api/v1/orders/%s" % near).status_code == 404
    assert requests.get(system.url + "/orders/%s" % near).status_code == 404
    # A customer's token is no key to anything else: not to the admin API, not to another order's actions.
    assert system.api("GET", "/api/v1/admin/orders/%d" % b["id"], token=a["token"]).status_code == 401
    assert system.api("POST", "/api/v1/orders/%s/cancel" % near).status_code == 404
    assert system.api("GET", "/api/v1/orders/%s" % b["token"]).json()["status"] == "new"
    assert len(a["token"]) >= 32


def _admin_routes():
    from gateway import create_app
    app = create_app()
    public = {"/admin/login", "/admin/login/code", "/admin/enrol", "/admin/logout"}
    for rule in app.url_map.iter_rules():
        path = rule.rule
        if not (path.startswith("/admin") or path.startswith("/api/v1/admin")) or path in public:
            continue
        concrete = re.sub(r"<int:[^>]+>", "1", path)
        concrete = re.sub(r"<[^>]+>", "x" * 32, concrete)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, concrete


def test_no_admin_page_or_api_answers_without_a_session_or_token(system):
    checked = 0
    for method, path in _admin_routes():
        r = requests.request(method, system.url + path, allow_redirects=False, json={} if method != "GET" else None)
        if path.startswith("/api/"):
            assert r.status_code == 401, (method, path, r.status_code)
        elif method == "GET":
            assert r.status_code == 302 and "/admin/login" in r.headers["Location"], (method, path, r.status_code)
        else:
            assert r.status_code in (302, 400), (method, path, r.status_code)  # CSRF first, then sign-in
        checked += 1
    assert checked > 30


def test_security_headers(system):
    page = requests.get(system.url + "/admin/login")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    for response in (page, requests.get(system.url + "/api/v1/directions")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    cookie = requests.Session()
    cookie.get(system.url + "/admin/login")
    assert all(c.has_nonstandard_attr("HttpOnly") for c in cookie.cookies)


def test_sign_in_from_a_new_address_alerts_the_admin(system):
    username, password = make_staff(system, "analyst")
    browser_session(system, username, password)
    rows = system.sql("SELECT kind, subject FROM gateway.security_alerts WHERE subject LIKE %s",
                      ("%" + username + "%",))
    assert [r["kind"] for r in rows] == ["new_sign_in_address"]
    browser_session(system, username, password)  # same address again: no second alert
    assert len(system.sql("SELECT 1 FROM gateway.security_alerts WHERE subject LIKE %s", ("%" + username + "%",))) == 1
    signins = system.sql("SELECT detail FROM gateway.audit_log WHERE actor = %s AND action = 'sign_in' "
                         "AND outcome = 'ok' ORDER BY id", (username,))
    assert [r["detail"]["new_address"] for r in signins] == [True, False]
