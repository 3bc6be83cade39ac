"""Changes that move money ask again and alert every admin (docs/security.md, "Step-up and alerts"), over HTTP
against the running system: without a fresh step-up the API refuses with 401 `step_up_required` and changes
nothing, the pages show a prompt and then make the change; each change sends an alert letter to the admin address
(the real dev SMTP server of the Procfile) and an SMS to the admin phone (the Twilio stand-in); a change of the
admin e-mail goes to the old and the new address; the alerts cannot be switched off from the panel. Least
privilege: operators enrol TOTP, `create-staff` requires it unless told otherwise, analysts see no order tokens
or letter bodies."""
import subprocess
import uuid

import pytest
import requests

from tests.conftest import ROOT, eventually
from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USER
from tests.e2e.notifier_support import Mail, log, put_settings, standin, text_of, unique_phone
from tests.e2e.partners_support import (balance, clear_direction_rule, complete_manual, letter_link, new_partner,
                                        order_as_visitor, set_direction_rule, visit_link)
from tests.e2e.test_security_staff import browser_session, csrf_of, make_staff, manual_claimed

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def admin(system, admin_token):
    """Fresh admin addresses for this test, SMS on."""
    email_, phone = "sec-admin-%s@example.com" % uuid.uuid4().hex[:10], unique_phone()
    standin(system)
    put_settings(system, admin_token, admin_email=email_, admin_phone=phone, sms_enabled=True, admin_language="en")
    return {"email": email_, "phone": phone}


def forget_step_up(system):
    """As if the step-up window had passed for every session and token."""
    for table in ("api_tokens", "sessions"):
        system.sql("UPDATE gateway.%s SET stepped_up_at = now() - interval '1 hour' WHERE stepped_up_at IS NOT NULL"
                   % table)


def alerts_to(system, to, words, containing=""):
    return [m for m in Mail(system).letters(to) if m["X-Exchanger-Kind"] == "ALERT" and words in m["Subject"]
            and containing in text_of(m)]


def alert_arrives(system, to, words, containing=""):
    """The alert letter (its subject has `words`, its text `containing`) is in the dev SMTP server's maildir;
    returns its text."""
    found = eventually(lambda: alerts_to(system, to, words, containing), timeout=60,
                       message="alert %r to %s" % (words, to))
    return text_of(found[0])


def sms_arrives(system, phone, words):
    return eventually(lambda: [m for m in standin(system).sent_to(phone) if words in m["body"]], timeout=60,
                      message="SMS %r to %s" % (words, phone))


def refused(response):
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "step_up_required", response.text
    return True


def unique_code():
    return "T" + uuid.uuid4().hex[:8].upper()


# -- the API -------------------------------------------------------------------------------------------------------
def test_currency_account_change_asks_again_and_alerts(system, admin_token, admin):
    code = unique_code()
    forget_step_up(system)
    body = {"code": code, "name": "Test %s" % code, "precision": 2, "payment_system": "testpay",
            "account": "ACC-1", "active": False}
    assert refused(system.api("POST", "/api/v1/admin/currencies", token=admin_token, json=body))
    assert not system.sql("SELECT 1 FROM orders.currencies WHERE code = %s", (code,))   # nothing changed
    assert system.sensitive("POST", "/api/v1/admin/currencies", token=admin_token, json=body).status_code == 201
    alert_arrives(system, admin["email"], "a currency was created")

    forget_step_up(system)
    change = {"account": "ACC-ATTACKER"}
    assert refused(system.api("PATCH", "/api/v1/admin/currencies/%s" % code, token=admin_token, json=change))
    assert system.sql("SELECT account FROM orders.currencies WHERE code = %s", (code,))[0]["account"] == "ACC-1"
    # A wrong password does not step up.
    wrong = system.api("POST", "/api/v1/auth/step-up", token=admin_token, json={"password": "not-the-password"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
    assert refused(system.api("PATCH", "/api/v1/admin/currencies/%s" % code, token=admin_token, json=change))
    r = system.sensitive("PATCH", "/api/v1/admin/currencies/%s" % code, token=admin_token, json=change)
    assert r.status_code == 200 and r.json()["account"] == "ACC-ATTACKER", r.text
    text = alert_arrives(system, admin["email"], "payment account")
    assert "ACC-1" in text and "ACC-ATTACKER" in text and ADMIN_USER in text
    sms_arrives(system, admin["phone"], "payment account")
    # Within the window the same token needs no second step-up; past it, it does again.
    assert system.api("PATCH", "/api/v1/admin/currencies/%s" % code, token=admin_token,
                      json={"name": "Renamed"}).status_code == 200
    forget_step_up(system)
    assert refused(system.api("PATCH", "/api/v1/admin/currencies/%s" % code, token=admin_token,
                              json={"name": "Again"}))
    # Every step-up is audited, the failed one too.
    outcomes = {r["outcome"] for r in system.sql("SELECT outcome FROM gateway.audit_log WHERE action = 'step_up' "
                                                 "AND actor = %s", (ADMIN_USER,))}
    assert {"ok", "failed"} <= outcomes


def test_direction_fee_change_asks_again_and_alerts(system, admin_token, admin):
    a, b = unique_code(), unique_code()
    for code in (a, b):
        assert system.sensitive("POST", "/api/v1/admin/currencies", token=admin_token, json={
            "code": code, "name": code, "precision": 2, "payment_system": "testpay", "account": "A-" + code,
            "active": False}).status_code == 201
    r = system.sensitive("POST", "/api/v1/admin/directions", token=admin_token, json={
        "currency_in": a, "currency_out": b, "exchange_type": "manual", "rate_in": "1", "rate_out": "1",
        "fee": "1", "min_amount": "1", "max_amount": "100", "active": False})
    assert r.status_code == 201, r.text
    direction = r.json()
    forget_step_up(system)
    path = "/api/v1/admin/directions/%s" % direction["id"]
    assert refused(system.api("PATCH", path, token=admin_token, json={"fee": "0", "rate_out": "2"}))
    assert system.sensitive("PATCH", path, token=admin_token, json={"fee": "0", "rate_out": "2"}).status_code == 200
    text = alert_arrives(system, admin["email"], "rate, fee or limits")
    assert "direction_update" in text and str(direction["id"]) in text


def test_rate_formula_and_manual_value_ask_again_and_alert(system, admin_token, admin):
    """A formula decides a direction's rate like PATCH /directions does (docs/rates.md): without a step-up nothing
    is saved; after it the formula is saved and every admin gets a letter naming the change, as for a manual value
    and the formula's removal."""
    a, b = unique_code(), unique_code()
    for code in (a, b):
        assert system.sensitive("POST", "/api/v1/admin/currencies", token=admin_token, json={
            "code": code, "name": code, "precision": 2, "payment_system": "testpay", "account": "A-" + code,
            "active": False}).status_code == 201
    r = system.sensitive("POST", "/api/v1/admin/directions", token=admin_token, json={
        "currency_in": a, "currency_out": b, "exchange_type": "manual", "rate_in": "1", "rate_out": "1",
        "fee": "0", "min_amount": "1", "max_amount": "100", "active": False})
    assert r.status_code == 201, r.text
    direction_id = r.json()["id"]
    symbol = "SEC%s" % a
    manual = "/api/v1/admin/rates/manual/manual/%s" % symbol
    formula = "/api/v1/admin/rates/formulas/%d" % direction_id
    body = {"expression": "markup(manual.%s, 3)" % symbol, "quote": "out_per_in"}
    forget_step_up(system)
    assert refused(system.api("PUT", manual, token=admin_token, json={"value": "91.5"}))
    assert refused(system.api("PUT", formula, token=admin_token, json=body))
    assert refused(system.api("DELETE", formula, token=admin_token))
    assert refused(system.api("POST", formula + "/accept", token=admin_token, json={}))
    assert system.api("GET", formula, token=admin_token).json()["formula"] is None       # nothing saved
    assert not system.sql("SELECT 1 FROM rates.source_values WHERE symbol = %s", (symbol,))
    assert not system.sql("SELECT 1 FROM rates.outbox WHERE event_type = 'security_change' "
                          "AND payload->'data'->'detail'->>'direction_id' = %s", (str(direction_id),))

    r = system.sensitive("PUT", manual, token=admin_token, json={"value": "91.5"})
    assert r.status_code == 200, r.text
    r = system.api("PUT", formula, token=admin_token, json=body)            # the step-up holds a few minutes
    assert r.status_code == 200, r.text
    assert system.api("GET", formula, token=admin_token).json()["formula"]["expression"] == body["expression"]
    text = alert_arrives(system, admin["email"], "rate formula", containing="markup(manual.%s, 3)" % symbol)
    assert "formula_save" in text and str(direction_id) in text and ADMIN_USER in text
    text = alert_arrives(system, admin["email"], "manual rate source", containing=symbol)
    assert "91.5" in text
    assert system.api("DELETE", formula, token=admin_token).status_code == 200
    assert "formula_delete" in alert_arrives(system, admin["email"], "formula was removed",
                                             containing="markup(manual.%s, 3)" % symbol)


def test_partner_commission_change_asks_again_and_alerts(system, admin_token, admin):
    current = system.api("GET", "/api/v1/admin/commission", token=admin_token).json()
    forget_step_up(system)
    body = {"min_withdrawal": current["min_withdrawal"]}
    assert refused(system.api("PUT", "/api/v1/admin/commission", token=admin_token, json=body))
    assert system.sensitive("PUT", "/api/v1/admin/commission", token=admin_token, json=body).status_code == 200
    alert_arrives(system, admin["email"], "the partner commission changed")
    # The payout and withdrawal decisions ask too (here for ones that do not exist: refused before the lookup).
    for path, body in (("/api/v1/admin/payouts/999999999/resolve", {"outcome": "failed", "note": "x"}),
                       ("/api/v1/admin/withdrawal-payouts/999999999/resolve", {"outcome": "failed", "note": "x"}),
                       ("/api/v1/admin/withdrawals/999999999/approve", {"method": "manual"})):
        forget_step_up(system)
        assert refused(system.api("POST", path, token=admin_token, json=body))
        assert system.sensitive("POST", path, token=admin_token, json=body).status_code == 404


def test_staff_changes_ask_again_and_alert(system, admin_token, admin):
    forget_step_up(system)
    username = "sec-an-%s" % uuid.uuid4().hex[:8]
    body = {"username": username, "password": "a-long-enough-password", "role": "analyst", "totp_required": False}
    assert refused(system.api("POST", "/api/v1/admin/staff", token=admin_token, json=body))
    assert not system.sql("SELECT 1 FROM gateway.staff WHERE username = %s", (username,))
    r = system.sensitive("POST", "/api/v1/admin/staff", token=admin_token, json=body)
    assert r.status_code == 201, r.text
    staff_id = r.json()["id"]
    alert_arrives(system, admin["email"], "a staff member was created")

    forget_step_up(system)
    path = "/api/v1/admin/staff/%d" % staff_id
    assert refused(system.api("PATCH", path, token=admin_token, json={"role": "admin"}))
    assert system.sql("SELECT role FROM gateway.staff WHERE id = %s", (staff_id,))[0]["role"] == "analyst"
    assert system.sensitive("PATCH", path, token=admin_token, json={"role": "operator"}).status_code == 200
    text = alert_arrives(system, admin["email"], "role, password or access")
    assert username in text and "operator" in text
    sms_arrives(system, admin["phone"], "role, password or access")
    # A password reset and a TOTP reset by an admin are alerted too; the password never is in the letter.
    new_password = "reset-" + uuid.uuid4().hex
    assert system.sensitive("PATCH", path, token=admin_token, json={"password": new_password}).status_code == 200
    assert system.sensitive("POST", path + "/reset-totp", token=admin_token, json={}).status_code == 200
    alert_arrives(system, admin["email"], "two-factor sign-in was reset")
    letters = [text_of(m) for m in Mail(system).letters(admin["email"])]
    assert not any(new_password in t for t in letters)


def test_every_admins_own_address_gets_the_alerts(system, admin_token, admin):
    own = "sec-own-%s@example.com" % uuid.uuid4().hex[:10]
    r = system.sensitive("POST", "/api/v1/admin/staff", token=admin_token, json={
        "username": "sec-adm-%s" % uuid.uuid4().hex[:8], "password": "a-long-enough-password", "role": "admin",
        "email": own})
    assert r.status_code == 201 and r.json()["email"] == own, r.text
    # the gateway hands the admins' addresses to the notifier at its next sweep
    eventually(lambda: own in system.sql("SELECT alert_emails FROM notifier.settings")[0]["alert_emails"],
               timeout=60, message="admin addresses synced")
    current = system.api("GET", "/api/v1/admin/commission", token=admin_token).json()
    assert system.sensitive("PUT", "/api/v1/admin/commission", token=admin_token,
                            json={"min_withdrawal": current["min_withdrawal"]}).status_code == 200
    for to in (admin["email"], own):
        alert_arrives(system, to, "the partner commission changed")
    # disabled, that admin hears no more
    assert system.sensitive("PATCH", "/api/v1/admin/staff/%s" % r.json()["id"], token=admin_token,
                            json={"active": False}).status_code == 200
    eventually(lambda: own not in system.sql("SELECT alert_emails FROM notifier.settings")[0]["alert_emails"],
               timeout=60, message="disabled admin's address dropped")


def test_admin_email_change_alerts_old_and_new_and_alerts_cannot_be_switched_off(system, admin_token, admin):
    new_email = "sec-new-%s@example.com" % uuid.uuid4().hex[:10]
    forget_step_up(system)
    assert refused(system.api("PUT", "/api/v1/admin/settings", token=admin_token, json={"admin_email": new_email}))
    put_settings(system, admin_token, admin_email=new_email)
    for to in (admin["email"], new_email):
        alert_arrives(system, to, "Notification settings changed", containing="-> %s" % new_email)
    # No toggle for security alerts: the address cannot be removed, ALERT is no kind to switch off, and with
    # every kind of the matrix off a change that moves money still alerts.
    r = system.sensitive("PUT", "/api/v1/admin/settings", token=admin_token, json={"admin_email": None})
    assert r.status_code == 422 and "admin_email" in r.json()["fields"], r.text
    r = system.sensitive("PUT", "/api/v1/admin/settings", token=admin_token, json={"enabled_kinds": ["ALERT"]})
    assert r.status_code == 422, r.text
    put_settings(system, admin_token, enabled_kinds=[])
    try:
        current = system.api("GET", "/api/v1/admin/commission", token=admin_token).json()
        assert system.sensitive("PUT", "/api/v1/admin/commission", token=admin_token,
                                json={"min_withdrawal": current["min_withdrawal"]}).status_code == 200
        alert_arrives(system, new_email, "the partner commission changed")
    finally:
        from libs.contracts.notifier import KINDS
        put_settings(system, admin_token, enabled_kinds=list(KINDS))


def test_an_approved_withdrawal_asks_the_operator_again_and_alerts(system, admin_token, admin, directions):
    direction = directions["manual"]
    set_direction_rule(system, admin_token, direction, "10", "amount")
    try:
        system.sensitive("PUT", "/api/v1/admin/commission", token=admin_token, json={"min_withdrawal": "5"})
        partner = new_partner(system)
        complete_manual(system, admin_token, order_as_visitor(system, visit_link(system, partner["link"]), direction))
        eventually(lambda: balance(system, partner) not in (None, "0"), timeout=60, message="partner credited")
    finally:
        clear_direction_rule(system, admin_token, direction)
    r = system.api("POST", "/api/v1/partner/withdrawals", token=partner["token"],
                   json={"amount": "5", "currency": "USDT", "to_account": "CAROL-USDT"})
    assert r.status_code == 201, r.text
    withdrawal = r.json()
    # a new destination is paid only once the partner confirmed it by the letter's link (docs/security.md)
    _, link_token, _ = letter_link(system, partner["email"], "WITHDRAWAL")
    assert system.api("POST", "/api/v1/account/destinations/confirm", json={"token": link_token}).ok
    username, password = make_staff(system, "operator")
    operator = system.login(username, password)
    path = "/api/v1/admin/withdrawals/%s/approve" % withdrawal["id"]
    assert refused(system.api("POST", path, token=operator, json={"method": "manual", "reference": "REF-1"}))
    assert system.api("GET", "/api/v1/admin/withdrawals", token=operator, params={"status": "requested"}).ok
    r = system.api("POST", "/api/v1/auth/step-up", token=operator, json={"code": system.totp_code(username)})
    assert r.status_code == 200, r.text                                 # a fresh one-time code steps up too
    r = system.api("POST", path, token=operator, json={"method": "manual", "reference": "REF-1"})
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    text = alert_arrives(system, admin["email"], "a partner withdrawal was approved")
    assert username in text and "withdrawal_id: %s" % withdrawal["id"] in text, text


# -- the pages -----------------------------------------------------------------------------------------------------
def test_pages_prompt_for_the_password_then_make_the_change(system, admin_token, admin):
    s = browser_session(system, ADMIN_USER, ADMIN_PASSWORD)
    forget_step_up(system)
    page = s.get(system.url + "/admin/settings")
    new_email = "sec-page-%s@example.com" % uuid.uuid4().hex[:10]
    form = {"csrf_token": csrf_of(page), "admin_email": new_email, "admin_phone": admin["phone"], "sms_enabled": "on",
            "admin_language": "en", "customer_sms_fee": system.api("GET", "/api/v1/admin/settings",
                                                                    token=admin_token).json()["customer_sms_fee"]}
    from libs.contracts.notifier import KINDS
    form_items = list(form.items()) + [("enabled_kinds", k) for k in KINDS]
    prompt = s.post(system.url + "/admin/settings", data=form_items, allow_redirects=False)
    assert prompt.status_code == 200 and prompt.headers["X-Step-Up"] == "required"
    assert 'id="step-up-form"' in prompt.text and 'value="%s"' % new_email in prompt.text
    settings = system.api("GET", "/api/v1/admin/settings", token=admin_token).json()
    assert settings["admin_email"] == admin["email"]                            # nothing changed yet
    carried = [(k, v) for k, v in form_items if k != "csrf_token"]
    wrong = s.post(system.url + "/admin/settings", data=carried + [("csrf_token", csrf_of(prompt)),
                                                                   ("step_up_password", "wrong-password")])
    assert 'id="step-up-error"' in wrong.text
    done = s.post(system.url + "/admin/settings", data=carried + [("csrf_token", csrf_of(wrong)),
                                                                  ("step_up_password", ADMIN_PASSWORD)],
                  allow_redirects=False)
    assert done.status_code == 303, done.text
    assert system.api("GET", "/api/v1/admin/settings", token=admin_token).json()["admin_email"] == new_email
    for to in (admin["email"], new_email):
        alert_arrives(system, to, "Notification settings changed", containing="-> %s" % new_email)
    # The step-up holds for this browser session: the next change needs no prompt.
    page = s.get(system.url + "/admin/settings")
    again = s.post(system.url + "/admin/settings", data=[("csrf_token", csrf_of(page))] + [
        (k, v) for k, v in carried if k != "admin_email"] + [("admin_email", admin["email"])], allow_redirects=False)
    assert again.status_code == 303


# -- least privilege -----------------------------------------------------------------------------------------------
def test_operators_enrol_totp_and_create_staff_requires_it_unless_told(system):
    username, password = make_staff(system, "operator")          # created without totp_required
    r = system.api("POST", "/api/v1/auth/token", json={"username": username, "password": password})
    assert r.status_code == 200 and r.json().get("enrolment_required") is True, r.text
    names = {flag: "cli-%s-%s" % (flag or "default", uuid.uuid4().hex[:6]) for flag in ("", "--without-totp")}
    for flag, name in names.items():
        env = dict(system.env, STAFF_PW="pw-%s-long-enough" % name)
        done = subprocess.run([".venv/bin/python", "-m", "gateway.cli", "create-staff", name, "--role", "analyst",
                               "--password-env", "STAFF_PW"] + ([flag] if flag else []), cwd=ROOT, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    required = {r["username"]: r["totp_required"] for r in system.sql(
        "SELECT username, totp_required FROM gateway.staff WHERE username = ANY(%s)", (list(names.values()),))}
    assert required == {names[""]: True, names["--without-totp"]: False}
    # staff made on the host are announced like staff made in the panel
    for name in names.values():
        assert system.sql("SELECT 1 FROM gateway.security_alerts WHERE kind = 'security_change' AND body LIKE %s",
                          ("%staff: " + name + "%",)), name
    r = system.api("POST", "/api/v1/auth/token", json={"username": names[""], "password": "pw-%s-long-enough" %
                                                       names[""]})
    assert r.json().get("enrolment_required") is True
    no_admin = subprocess.run([".venv/bin/python", "-m", "gateway.cli", "create-staff",
                               "cli-adm-" + uuid.uuid4().hex[:6], "--role", "admin", "--without-totp",
                               "--password-env", "STAFF_PW"], cwd=ROOT,
                              env=dict(system.env, STAFF_PW="a-long-enough-password"), capture_output=True)
    assert no_admin.returncode == 2


def test_analysts_see_no_order_tokens_or_letter_bodies(system, admin_token, directions):
    order = manual_claimed(system, directions)
    username, password = make_staff(system, "analyst")
    analyst = system.login(username, password)
    mine = system.api("GET", "/api/v1/admin/orders/%d" % order["id"], token=analyst).json()
    assert mine["id"] == order["id"] and mine["token"] is None
    listed = system.api("GET", "/api/v1/admin/orders", token=analyst, params={"email": order["email"]}).json()
    assert [o["token"] for o in listed["items"]] == [None]
    assert system.api("GET", "/api/v1/admin/orders/%d" % order["id"], token=admin_token).json()["token"] == \
        order["token"]
    letters = eventually(lambda: log(system, admin_token, order_id=order["id"]), timeout=60, message="letters")
    assert any(order["token"] in (n["body_text"] or "") for n in letters)        # the admin sees the link
    for n in log(system, analyst, order_id=order["id"]):
        assert order["token"] not in (n["body_text"] or "") and not n["body_html"]
        one = system.api("GET", "/api/v1/admin/notifications/%d" % n["id"], token=analyst).json()
        assert order["token"] not in str(one)
    s = browser_session(system, username, password)
    for path in ("/admin/notifications?order_id=%d" % order["id"], "/admin/orders/%d" % order["id"]):
        page = s.get(system.url + path)
        assert page.status_code == 200 and order["token"] not in page.text, path
    assert requests.get(system.url + "/api/v1/orders/%s" % order["token"]).status_code == 200
