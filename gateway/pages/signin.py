"""Operator sign-in: password, then the TOTP code (or, the first time, enrolment of an authenticator app).
A new session id at each step; sign-out ends the session on the server. Limits and lockout as for the API."""
import segno
from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for

from gateway.pages import safe_next
from gateway.security.caller import client_ip
from gateway.security.ratelimits import code_limits, login_limits
from gateway.security.sessions import clear_staff_cookie, session_store, set_staff_cookie, staff_cookie
from gateway.security.signin import code_step, finish_sign_in, password_step
from gateway.security.staff import staff_store
from gateway.security.totp import totp_needed, totp_store

bp = Blueprint("signin", __name__, url_prefix="/admin")


def _pending(stage):
    current = session_store().load(staff_cookie())
    if current is None or current["stage"] != stage:
        return None
    g.auth_session = current
    return current


def _staff_of(sess):
    return {"id": sess["staff_id"], "username": sess["username"], "role": sess["role"]}


def _start(staff_id, stage, response_target):
    """Replace whatever session the browser had by a fresh one (new id) at `stage`."""
    session_store().revoke(staff_cookie(), "replaced at sign-in")
    next_url = session.get("next")
    session.clear()  # a fresh CSRF secret with the fresh session
    if next_url and stage != "full":
        session["next"] = next_url
    raw = session_store().create(staff_id, stage, client_ip(), request.user_agent.string)
    return set_staff_cookie(redirect(response_target, 303), raw)


def _complete(staff):
    """Fully signed in: a new session id, audit, known-address check and alert."""
    target = safe_next(session.get("next"))
    session_store().revoke(staff_cookie(), "signed in")
    session.clear()
    store = staff_store()
    with store.db.transaction() as cur:
        raw = session_store().create(staff["id"], "full", client_ip(), request.user_agent.string, cur=cur)
        finish_sign_in(staff, "web", cur)
    return set_staff_cookie(redirect(target, 303), raw)


@bp.get("/login")
def login():
    current = session_store().load(staff_cookie())
    if current is not None and current["stage"] == "full":
        return redirect(url_for("admin.dashboard"))
    if request.args.get("next"):
        session["next"] = safe_next(request.args["next"])
    return render_template("admin/login.html")


@bp.post("/login")
@login_limits
def login_post():
    username = (request.form.get("username") or "").strip()[:64]
    password = request.form.get("password") or ""
    if not username or not password:
        return render_template("admin/login.html", error="Enter your username and password.", username=username), 422
    staff, problem, retry_after = password_step(username, password, "web")
    if problem == "locked":
        return render_template("admin/login.html", username=username,
                               error="Too many failed sign-ins: this account is locked for a while."), 423, \
            {"Retry-After": str(retry_after)}
    if problem:
        return render_template("admin/login.html", username=username, error="Wrong username or password."), 401
    if totp_store().status(staff["id"]):
        return _start(staff["id"], "password", url_for("signin.code"))
    if totp_needed(staff, current_app.config):
        staff_store().audit(staff["username"], "sign_in", outcome="enrolment_required", role=staff["role"],
                            ip=client_ip(), detail={"via": "web"})
        return _start(staff["id"], "enrol", url_for("signin.enrol"))
    return _complete(staff)


@bp.get("/login/code")
def code():
    if _pending("password") is None:
        return redirect(url_for("signin.login"))
    return render_template("admin/code.html")


@bp.post("/login/code")
@code_limits
def code_post():
    pending = _pending("password")
    if pending is None:
        return redirect(url_for("signin.login"), 303)
    staff = _staff_of(pending)
    ok, retry_after = code_step(staff, request.form.get("code") or "", "web")
    if retry_after:
        session_store().revoke(staff_cookie(), "locked")
        return render_template("admin/login.html", error="Too many failed sign-ins: this account is locked "
                                                         "for a while."), 423, {"Retry-After": str(retry_after)}
    if not ok:
        return render_template("admin/code.html", error="Wrong or already used code."), 401
    return _complete(staff)


def _qr_svg(uri):
    return segno.make(uri, error="m").svg_inline(scale=4, dark="#111", light="#fff")


@bp.get("/enrol")
def enrol():
    pending = _pending("enrol")
    if pending is None:
        return redirect(url_for("signin.login"))
    totp = totp_store()
    if totp.status(pending["staff_id"]):  # enrolled meanwhile (e.g. through the API): sign in with a code
        session_store().revoke(staff_cookie(), "already enrolled")
        return redirect(url_for("signin.login"))
    secret = totp.pending_secret(pending["staff_id"])
    started = totp.begin(pending["staff_id"], pending["username"]) if secret is None else None
    if started is None:
        started = {"secret": secret, "otpauth_uri": totp.uri(secret, pending["username"])}
    return render_template("admin/enrol.html", secret=started["secret"], uri=started["otpauth_uri"],
                           qr=_qr_svg(started["otpauth_uri"]))


@bp.post("/enrol")
@code_limits
def enrol_post():
    pending = _pending("enrol")
    if pending is None:
        return redirect(url_for("signin.login"), 303)
    staff = _staff_of(pending)
    if not totp_store().confirm(staff["id"], request.form.get("code") or ""):
        staff_store().audit(staff["username"], "totp_enrolled", outcome="failed", role=staff["role"],
                            ip=client_ip())
        secret = totp_store().pending_secret(staff["id"])
        if secret is None:
            return redirect(url_for("signin.enrol"), 303)
        uri = totp_store().uri(secret, staff["username"])
        return render_template("admin/enrol.html", secret=secret, uri=uri, qr=_qr_svg(uri),
                               error="Wrong code: check the time on your phone and try the next one."), 422
    staff_store().audit(staff["username"], "totp_enrolled", role=staff["role"], ip=client_ip())
    return _complete(staff)


@bp.post("/logout")
def logout():
    current = session_store().load(staff_cookie())
    if current is not None:
        session_store().revoke(staff_cookie(), "signed out")
        staff_store().audit(current["username"], "sign_out", role=current["role"], ip=client_ip(),
                            detail={"via": "web"})
    session.clear()
    return clear_staff_cookie(redirect(url_for("signin.login"), 303))
