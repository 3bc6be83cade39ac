"""Operator pages for settings: notification settings, directions and currencies, staff and their sessions, the
staff member's own account (second factor, password), the gateway audit log. Changes are admin-only (the API
checks again); the other roles see the pages read-only."""
from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from gateway.pages import internal, staff_page
from gateway.pages.signin import _qr_svg
from gateway.security.caller import client_ip
from gateway.security.ratelimits import password_change_limits
from gateway.security.sessions import session_store
from gateway.security.staff import ADMIN, READ, ROLES, staff_store
from gateway.security.stepup import page_step_up
from gateway.security.totp import totp_store
from libs.contracts.orders import EXCHANGE_TYPES

bp = Blueprint("manage", __name__, url_prefix="/admin")

DIRECTION_FIELDS = ("rate_in", "rate_out", "fee", "min_amount", "max_amount")
CURRENCY_FIELDS = ("name", "reserve", "account")
MONITOR_FLAGS = ("juridical", "verifying", "cardverify")   # the direction's own flags in the monitors' file


def _report(result, what):
    if result.ok:
        flash("%s saved." % what, "ok")
    else:
        details = "; ".join("%s: %s" % (k, " ".join(map(str, v)) if isinstance(v, list) else v)
                            for k, v in result.fields.items())
        flash("%s not saved: %s" % (what, details or result.message), "error")


def _form_values(names):
    return {k: request.form[k].strip() for k in names if request.form.get(k, "").strip()}


# -- notification settings -------------------------------------------------------------------------------------------
def _kinds():
    try:
        from libs.contracts.notifier import KINDS
        return list(KINDS)
    except ImportError:  # the notifier is not installed: show what the settings say
        return []


@bp.get("/settings")
@staff_page(READ)
def settings():
    result = internal.call("GET", "/api/v1/admin/settings")
    return render_template("admin/settings.html", result=result, kinds=_kinds(), kind_words=KIND_WORDS)


# What each letter and SMS of the matrix (docs/notifier.md) sends, and to whom.
KIND_WORDS = {
    "L1": "Letter to the customer: request created, where to pay (every request)",
    "L2": "Letter to the customer: payment confirmed by the operator, with the notice (manual)",
    "L3": "Letter to the customer: exchange completed (every request)",
    "L4": "Letter to the customer: request canceled, with the reason (every request)",
    "L5": "Message to the partner in the cabinet: commission credited",
    "L6": "Letter to the admin: an automatic exchange completed",
    "L7": "Letter to the admin: a semi-automatic request is paid and awaits the payout",
    "L8": "Letter to the admin: a new manual request",
    "L9": "Letter to the admin: a customer says a manual request is paid",
    "L10": "Letter to the admin: a payout failed",
    "S1": "SMS to the admin: an automatic exchange completed",
    "S2": "SMS to the admin: a semi-automatic request is paid",
    "S3": "SMS to the admin: a new manual request",
    "S4": "SMS to the admin: a payout failed",
    "S5": "SMS to the customer who paid for it: exchange completed",
}


@bp.post("/settings")
@staff_page(ADMIN)
@page_step_up()
def settings_post():
    current = internal.call("GET", "/api/v1/admin/settings")
    if not current.ok:
        flash("Settings are not available: %s" % current.message, "error")
        return redirect(url_for("manage.settings"), 303)
    before = current.data
    wanted = {
        "sms_enabled": request.form.get("sms_enabled") == "on",
        "admin_email": request.form.get("admin_email", "").strip() or None,
        "admin_phone": request.form.get("admin_phone", "").strip() or None,
        "admin_language": request.form.get("admin_language", "en"),
        "customer_sms_fee": request.form.get("customer_sms_fee", "").strip() or "0",
        "enabled_kinds": sorted(request.form.getlist("enabled_kinds")),
    }
    changes = {k: v for k, v in wanted.items()
               if k in before and (sorted(before[k] or []) if k == "enabled_kinds" else before[k]) != v}
    if not changes:
        flash("Nothing changed.", "ok")
        return redirect(url_for("manage.settings"), 303)
    if before.get("version"):
        changes["version"] = before["version"]  # compare-and-set: another admin's change is not overwritten
    # The notifier mails every change to the admin address before and after it (a switched-off alert is heard).
    _report(internal.call("PUT", "/api/v1/admin/settings", body=changes), "Notification settings")
    return redirect(url_for("manage.settings"), 303)


# -- directions and currencies ---------------------------------------------------------------------------------------
@bp.get("/directions")
@staff_page(READ)
def directions():
    dirs = internal.call("GET", "/api/v1/admin/directions")
    currencies = internal.call("GET", "/api/v1/admin/currencies")
    monitors = internal.call("GET", "/api/v1/admin/monitors")
    return render_template("admin/directions.html", directions=dirs, currencies=currencies, monitors=monitors,
                           exchange_types=EXCHANGE_TYPES, monitor_flags=MONITOR_FLAGS)


@bp.post("/monitors/maintenance")
@staff_page(ADMIN)
def monitor_maintenance():
    """The maintenance switch of the monitors' file (docs/monitors.md); audited by orders and the gateway."""
    on = request.form.get("maintenance") == "on"
    _report(internal.call("PUT", "/api/v1/admin/monitors/maintenance", body={"maintenance": on}),
            "Maintenance %s" % ("on" if on else "off"))
    return redirect(url_for("manage.directions"), 303)


def _cleared_or_set(body, name):
    """A monitor code or city: sent when edited; emptied, it is cleared (null)."""
    value = request.form.get(name, "").strip()
    if name in request.form and value != request.form.get(name + "_shown", "").strip():
        body[name] = value or None


@bp.post("/directions")
@staff_page(ADMIN)
@page_step_up()
def direction_create():
    body = _form_values(DIRECTION_FIELDS + ("currency_in", "currency_out", "exchange_type"))
    if request.form.get("payment_window_minutes", "").isdigit():
        body["payment_window_minutes"] = int(request.form["payment_window_minutes"])
    body["active"] = request.form.get("active") == "on"
    _report(internal.call("POST", "/api/v1/admin/directions", body=body), "New direction")
    return redirect(url_for("manage.directions"), 303)


@bp.post("/directions/<int:direction_id>")
@staff_page(ADMIN)
@page_step_up()
def direction_update(direction_id):
    body = _form_values(DIRECTION_FIELDS)
    if request.form.get("payment_window_minutes", "").isdigit():
        body["payment_window_minutes"] = int(request.form["payment_window_minutes"])
    body["active"] = request.form.get("active") == "on"
    body["monitor_params"] = [f for f in MONITOR_FLAGS if f in request.form.getlist("monitor_params")]
    _cleared_or_set(body, "city")
    body["floating"] = request.form.get("floating") == "on"
    _report(internal.call("PATCH", "/api/v1/admin/directions/%d" % direction_id, body=body),
            "Direction %d" % direction_id)
    return redirect(url_for("manage.directions"), 303)


@bp.post("/currencies")
@staff_page(ADMIN)
@page_step_up()
def currency_create():
    body = _form_values(CURRENCY_FIELDS + ("code", "payment_system", "monitor_code"))
    if request.form.get("precision", "").isdigit():
        body["precision"] = int(request.form["precision"])
    body["active"] = request.form.get("active") == "on"
    _report(internal.call("POST", "/api/v1/admin/currencies", body=body), "New currency")
    return redirect(url_for("manage.directions"), 303)


@bp.post("/currencies/<code>")
@staff_page(ADMIN)
@page_step_up()
def currency_update(code):
    body = _form_values(CURRENCY_FIELDS)
    if body.get("reserve") == request.form.get("reserve_shown"):
        # Untouched: the form only carries the reserve back. Sent, it would restate the old account's balance
        # as the new account's reserve (docs/architecture.md, "Reserves").
        del body["reserve"]
    _cleared_or_set(body, "monitor_code")
    body["active"] = request.form.get("active") == "on"
    result = internal.call("PATCH", "/api/v1/admin/currencies/%s" % code[:16], body=body)
    _report(result, "Currency %s" % code[:16])
    if result.ok and result.data.get("notice"):
        flash(result.data["notice"], "ok")
    return redirect(url_for("manage.directions"), 303)


# -- staff -----------------------------------------------------------------------------------------------------------
@bp.get("/staff")
@staff_page(ADMIN)
def staff():
    return render_template("admin/staff.html", staff=internal.call("GET", "/api/v1/admin/staff"),
                           sessions=internal.call("GET", "/api/v1/admin/sessions"), roles=ROLES)


@bp.post("/staff")
@staff_page(ADMIN)
@page_step_up()
def staff_create():
    body = {"username": request.form.get("username", "").strip(), "password": request.form.get("password", ""),
            "role": request.form.get("role", ""), "totp_required": request.form.get("totp_required") == "on",
            "email": request.form.get("email", "").strip() or None}
    _report(internal.call("POST", "/api/v1/admin/staff", body=body), "Staff member %s" % body["username"])
    return redirect(url_for("manage.staff"), 303)


@bp.post("/staff/<int:staff_id>/<action>")
@staff_page(ADMIN)
@page_step_up(lambda staff_id, action: action in ("update", "reset-totp"))
def staff_action(staff_id, action):
    if action == "update":
        body = {"role": request.form.get("role"), "active": request.form.get("active") == "on",
                "totp_required": request.form.get("totp_required") == "on"}
        if "email" in request.form:
            body["email"] = request.form["email"].strip() or None
        if request.form.get("password"):
            body["password"] = request.form["password"]
        result = internal.call("PATCH", "/api/v1/admin/staff/%d" % staff_id, body=body)
    elif action in ("reset-totp", "unlock"):
        result = internal.call("POST", "/api/v1/admin/staff/%d/%s" % (staff_id, action), body={})
    else:
        return render_template("admin/error.html", code=404, message="No such action."), 404
    _report(result, "Staff member %d" % staff_id)
    return redirect(url_for("manage.staff"), 303)


@bp.post("/sessions/<session_id>/end")
@staff_page(ADMIN)
def session_end(session_id):
    _report(internal.call("DELETE", "/api/v1/admin/sessions/%s" % session_id[:32]), "Session end")
    return redirect(url_for("manage.staff"), 303)


@bp.get("/audit")
@staff_page(ADMIN)
def audit():
    query = {k: v for k, v in request.args.items() if k in ("actor", "before") and v.strip()}
    return render_template("admin/audit.html", result=internal.call("GET", "/api/v1/admin/audit", query=query),
                           query=query)


# -- my account ------------------------------------------------------------------------------------------------------
@bp.get("/account")
@staff_page(READ)
def account():
    me = g.staff
    totp = totp_store()
    enrolment = None
    if not totp.status(me["id"]) and request.args.get("enrol"):
        secret = totp.pending_secret(me["id"])
        if secret is None:
            secret = totp.begin(me["id"], me["username"])["secret"]
        uri = totp.uri(secret, me["username"])
        enrolment = {"secret": secret, "uri": uri, "qr": _qr_svg(uri)}
    return render_template("admin/account.html", enrolled=totp.status(me["id"]), enrolment=enrolment,
                           sessions=session_store().list_live(me["id"]),
                           current_hash=g.auth_session["id_hash"])


@bp.post("/account/totp")
@staff_page(READ)
def account_totp():
    me = g.staff
    if totp_store().confirm(me["id"], request.form.get("code") or ""):
        staff_store().audit(me["username"], "totp_enrolled", role=me["role"], ip=client_ip())
        flash("Two-factor sign-in is on: the next sign-in asks for a code.", "ok")
        return redirect(url_for("manage.account"), 303)
    flash("Wrong code: try the next one.", "error")
    return redirect(url_for("manage.account", enrol=1), 303)


@bp.post("/account/password")
@staff_page(READ)
@password_change_limits
def account_password():
    me = g.staff
    store = staff_store()
    if store.authenticate(me["username"], request.form.get("current") or "") is None:
        store.audit(me["username"], "password_change", outcome="failed", role=me["role"], ip=client_ip())
        flash("The current password is wrong.", "error")
        return redirect(url_for("manage.account"), 303)
    new = request.form.get("new") or ""
    try:
        with store.db.transaction() as cur:
            store.update(me["id"], cur, password=new)
            # Every other session and token of this account ends; this one stays.
            cur.execute("UPDATE sessions SET revoked_at = now(), revoked_reason = 'password changed' "
                        "WHERE staff_id = %s AND revoked_at IS NULL AND id_hash <> %s",
                        (me["id"], g.auth_session["id_hash"]))
            cur.execute("UPDATE api_tokens SET revoked_at = now() WHERE staff_id = %s AND revoked_at IS NULL",
                        (me["id"],))
            store.audit(me["username"], "password_change", role=me["role"], ip=client_ip(), cur=cur)
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("manage.account"), 303)
    flash("Password changed; your other sessions were ended.", "ok")
    return redirect(url_for("manage.account"), 303)
