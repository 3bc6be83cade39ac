"""The route x role matrix, generated from the gateway's Flask URL map (docs/security.md, "Who may do what"):
every route is classified below, and a route nobody classified fails the test; then, against the running system:
- an analyst gets 403 on every route that changes something (API and pages; their own account page aside);
- an operator gets 403 on every change of settings, staff, directions, currencies and commissions;
- an enrolment-scope token (password right, TOTP not enrolled yet) gets 403 on every admin API route;
- a form POST without its CSRF token gets 400 on every page route that changes state, even signed in;
- and every route that moves money asks for a step-up (docs/security.md, "Step-up and alerts")."""
import re

import pytest
import requests

from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USER
from tests.e2e.test_security_staff import browser_session, csrf_of, make_staff

pytestmark = pytest.mark.timeout(300)

SAFE = {"GET"}

# Every route of the URL map falls in exactly one class (first match by path). `staff` routes carry the roles that
# may call them (gateway.security.caller.require / gateway.pages.staff_page); the others must not.
CLASSES = [
    ("staff-sign-in", r"^/admin/(login|login/code|enrol|logout)$"
                      r"|^/api/v1/auth/(token|logout|me|totp|totp/confirm|step-up)$"),
    ("own-account", r"^/admin/account(/password|/totp)?$"),
    ("staff", r"^/admin/|^/api/v1/admin/"),
    # /api/v1/orders/<token>/deposit: the order's deposit address and confirmations (crypto rails), token-guarded
    ("customer", r"^/$|^/exchange$|^/orders/<token>(/paid|/cancel)?$"
                 r"|^/api/v1/orders(/<token>(/paid|/cancel|/deposit)?)?$|^/api/v1/directions$"),
    ("customer-account", r"^/account/|^/api/v1/account(/|$)|^/api/v1/partner(/withdrawals)?$"),
    ("webhook", r"^/api/v1/webhooks/twilio$"),
    ("monitors", r"^/rates\.(xml|json)$"),
    ("infrastructure", r"^/(healthz|readyz|metrics)$|^/static/<path:filename>$|^/api/v1/(openapi\.json|echo)$"),
]
# Groups of staff routes only admins may change (the operator row of the matrix).
ADMIN_ONLY_GROUPS = ("settings", "staff", "sessions", "directions", "currencies", "commission", "partners", "audit",
                     "monitors")
# POSTs that change nothing (a formula's preview: the rate it would give now, docs/rates.md): every role may.
READ_ONLY_POSTS = {("POST", "/api/v1/admin/rates/formulas/<int:direction_id>/preview"),
                   ("POST", "/admin/rates/<int:direction_id>/preview")}
# What moves money (docs/security.md): each such change asks for a step-up.
STEP_UP = [
    ("POST", "/api/v1/admin/directions"), ("PATCH", "/api/v1/admin/directions/<int:direction_id>"),
    ("POST", "/api/v1/admin/currencies"), ("PATCH", "/api/v1/admin/currencies/<code>"),
    ("PUT", "/api/v1/admin/commission"), ("PUT", "/api/v1/admin/commission/directions/<int:direction_id>"),
    ("DELETE", "/api/v1/admin/commission/directions/<int:direction_id>"),
    ("PUT", "/api/v1/admin/partners/<int:partner_id>"), ("PUT", "/api/v1/admin/settings"),
    ("POST", "/api/v1/admin/staff"), ("PATCH", "/api/v1/admin/staff/<int:staff_id>"),
    ("POST", "/api/v1/admin/staff/<int:staff_id>/reset-totp"),
    ("POST", "/api/v1/admin/payouts/<int:payout_id>/resolve"),
    ("POST", "/api/v1/admin/withdrawal-payouts/<int:payout_id>/resolve"),
    ("POST", "/api/v1/admin/withdrawals/<int:withdrawal_id>/approve"),
    ("POST", "/admin/settings"), ("POST", "/admin/directions"), ("POST", "/admin/directions/<int:direction_id>"),
    ("POST", "/admin/currencies"), ("POST", "/admin/currencies/<code>"), ("POST", "/admin/staff"),
    ("POST", "/admin/staff/<int:staff_id>/<action>"), ("POST", "/admin/partners/<int:partner_id>"),
    ("POST", "/admin/commission"), ("POST", "/admin/commission/directions"),
    ("POST", "/admin/withdrawals/<int:withdrawal_id>/<action>"),
    # the rate engine: a manual value or a formula decides a direction's rate
    ("PUT", "/api/v1/admin/rates/manual/<source>/<symbol>"),
    ("PUT", "/api/v1/admin/rates/formulas/<int:direction_id>"),
    ("DELETE", "/api/v1/admin/rates/formulas/<int:direction_id>"),
    ("POST", "/api/v1/admin/rates/formulas/<int:direction_id>/accept"),
    ("POST", "/admin/rates/manual"), ("POST", "/admin/rates/<int:direction_id>"),
]
# What the page test posts besides the CSRF token, where the form's operation decides (a preview asks nothing).
STEP_UP_FORM = {"/admin/rates/<int:direction_id>": {"op": "save", "expression": "cbr.USD"}}


def classify(rule):
    for name, pattern in CLASSES:
        if re.search(pattern, rule):
            return name
    return None


def url_map():
    """[(method, rule, class, required roles, steps up)] of every route of the gateway."""
    from gateway import create_app
    app = create_app()
    routes = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, rule.rule, classify(rule.rule), getattr(view, "required_roles", None),
                           bool(getattr(view, "step_up", False))))
    return routes


def concrete(rule, action=None):
    path = re.sub(r"<int:[^>]+>", "999999999", rule)
    path = path.replace("<action>", action or "approve")
    return re.sub(r"<[^>]+>", "X" * 8, path)


ROUTES = url_map()


def test_every_route_is_classified_and_every_staff_route_names_its_roles():
    unclassified = [(m, r) for m, r, cls, _, _ in ROUTES if cls is None]
    assert not unclassified, "classify these routes in CLASSES: %s" % unclassified
    for method, rule, cls, roles, _ in ROUTES:
        if cls in ("staff", "own-account"):
            assert roles, (method, rule, "a staff route without @require / @staff_page")
        else:
            assert roles is None, (method, rule, cls)
        if cls == "staff" and method not in SAFE and (method, rule) not in READ_ONLY_POSTS:
            assert "analyst" not in roles, (method, rule, "analysts change nothing")
            group = rule.split("/admin/", 1)[1].split("/")[0]
            if group in ADMIN_ONLY_GROUPS:
                assert "operator" not in roles, (method, rule, "an operator may not change %s" % group)
    steps_up = {(m, r) for m, r, _, _, up in ROUTES if up}
    assert steps_up == set(STEP_UP), "step-up routes differ: %s" % (steps_up ^ set(STEP_UP))
    assert len(ROUTES) > 100


def _api_call(system, method, path, token):
    return system.api(method, path, token=token, json={} if method not in SAFE else None)


def test_role_matrix_against_the_running_system(system):
    analyst = make_staff(system, "analyst")
    operator = make_staff(system, "operator")
    tokens = {"analyst": system.login(*analyst), "operator": system.login(*operator)}
    browsers = {"analyst": browser_session(system, *analyst), "operator": browser_session(system, *operator)}
    forms = {role: csrf_of(s.get(system.url + "/admin/")) for role, s in browsers.items()}
    checked = 0
    for method, rule, cls, roles, _ in ROUTES:
        if cls != "staff":
            continue
        for role in ("analyst", "operator"):
            if role in roles:
                continue
            if rule.startswith("/api/"):
                r = _api_call(system, method, concrete(rule), tokens[role])
                assert r.status_code == 403 and r.json()["error"] == "forbidden", (role, method, rule, r.text)
            else:
                s = browsers[role]
                if method in SAFE:
                    r = s.get(system.url + concrete(rule), allow_redirects=False)
                else:
                    r = s.post(system.url + concrete(rule), data={"csrf_token": forms[role]}, allow_redirects=False)
                assert r.status_code == 403, (role, method, rule, r.status_code)
            checked += 1
    # The rows the issue names, counted: every non-GET for analysts, the admin groups' changes for operators.
    analyst_changes = [r for m, r, cls, _, _ in ROUTES if cls == "staff" and m not in SAFE
                       and (m, r) not in READ_ONLY_POSTS]
    assert checked >= len(analyst_changes) + 10
    denied = system.sql("SELECT count(*) AS n FROM gateway.audit_log WHERE actor = %s AND outcome = 'denied'",
                        (analyst[0],))[0]["n"]
    assert denied >= len(analyst_changes)


def test_an_enrolment_token_opens_no_admin_route(system):
    username, password = make_staff(system, "operator")          # must enrol TOTP before anything else
    r = system.api("POST", "/api/v1/auth/token", json={"username": username, "password": password})
    assert r.status_code == 200 and r.json()["enrolment_required"], r.text
    token = r.json()["token"]
    checked = 0
    for method, rule, cls, _, _ in ROUTES:
        if cls == "staff" and rule.startswith("/api/"):
            r = _api_call(system, method, concrete(rule), token)
            assert r.status_code == 403 and r.json()["error"] == "enrolment_required", (method, rule, r.text)
            checked += 1
    r = system.api("POST", "/api/v1/auth/step-up", token=token, json={"password": password})
    assert r.status_code == 403 and r.json()["error"] == "enrolment_required"
    assert checked == len([r for m, r, cls, _, _ in ROUTES if cls == "staff" and r.startswith("/api/")]) > 40


def test_no_csrf_token_on_a_form_post_is_400_even_signed_in(system):
    admin = browser_session(system, ADMIN_USER, ADMIN_PASSWORD)
    checked = 0
    for method, rule, cls, _, _ in ROUTES:
        if rule.startswith("/api/") or method in SAFE or cls == "infrastructure":
            continue
        for session in (admin, requests.Session()):
            r = session.request(method, system.url + concrete(rule), data={"text": "x"}, allow_redirects=False)
            assert r.status_code == 400, (method, rule, r.status_code)
            checked += 1
    assert admin.get(system.url + "/admin/", allow_redirects=False).status_code == 200   # still signed in
    assert checked > 40


def test_every_money_route_refuses_without_a_step_up(system):
    token = system.login()
    system.sql("UPDATE gateway.api_tokens SET stepped_up_at = NULL")
    system.sql("UPDATE gateway.sessions SET stepped_up_at = NULL")
    admin = browser_session(system, ADMIN_USER, ADMIN_PASSWORD)
    form = csrf_of(admin.get(system.url + "/admin/"))
    for method, rule in STEP_UP:
        if rule.startswith("/api/"):
            r = _api_call(system, method, concrete(rule), token)
            assert r.status_code == 401 and r.json()["error"] == "step_up_required", (method, rule, r.text)
        else:
            r = admin.post(system.url + concrete(rule, "update" if "staff" in rule else "approve"),
                           data=dict(STEP_UP_FORM.get(rule, {}), csrf_token=form), allow_redirects=False)
            assert r.status_code == 200 and r.headers.get("X-Step-Up") == "required", (method, rule, r.status_code)
            assert 'id="step-up-form"' in r.text
