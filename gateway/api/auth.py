"""Staff sign-in for the API: username + password (+ TOTP code once enrolled) -> bearer token.

An account that must have a second factor and has none yet gets a short-lived *enrolment* token: it may only call
POST /api/v1/auth/totp (get a secret) and POST /api/v1/auth/totp/confirm (prove it with a code); the confirm turns
it into a full token. Every other admin call answers 403 `enrolment_required` until then.
"""
from flask import Blueprint, current_app, jsonify, request

from gateway.api import load_body
from gateway.errors import ApiError
from gateway.schemas import EmptySchema, LoginSchema, StepUpSchema, TotpCodeSchema
from gateway.security.caller import client_ip, current_staff
from gateway.security.ratelimits import code_limits, login_limits
from gateway.security.signin import code_step, finish_sign_in, password_step
from gateway.security.staff import staff_store
from gateway.security.stepup import is_fresh, step_up
from gateway.security.totp import totp_needed, totp_store

bp = Blueprint("auth_api", __name__, url_prefix="/api/v1/auth")


def _bearer():
    return request.headers.get("Authorization", "")[7:].strip()


def _locked(retry_after):
    return ApiError(423, "locked", "too many failed sign-ins: sign-in is locked for a while",
                    headers={"Retry-After": str(retry_after)})


@bp.post("/token")
@login_limits
def issue_token():
    data = load_body(LoginSchema)
    store = staff_store()
    staff, problem, retry_after = password_step(data["username"], data["password"], "api")
    if problem == "locked":
        raise _locked(retry_after)
    if problem:
        raise ApiError(401, "unauthorized", "wrong username or password")
    cfg = current_app.config
    if totp_store().status(staff["id"]):
        if not data.get("code"):
            raise ApiError(401, "totp_required", "this account signs in with a one-time code: send `code` too")
        ok, retry_after = code_step(staff, data["code"], "api", admitted=True)
        if retry_after:
            raise _locked(retry_after)
        if not ok:
            raise ApiError(401, "unauthorized", "wrong or already used one-time code")
    elif totp_needed(staff, cfg):
        token, expires_at = store.issue_token(staff, cfg["PRE_AUTH_MINUTES"] / 60.0, client_ip(), scope="enrol")
        store.audit(staff["username"], "sign_in", outcome="enrolment_required", role=staff["role"],
                    ip=client_ip(), detail={"via": "api"})
        return jsonify({"token": token, "expires_at": expires_at.isoformat(), "role": staff["role"],
                        "enrolment_required": True})
    with store.db.transaction() as cur:
        token, expires_at = store.issue_token(staff, cfg["TOKEN_TTL_HOURS"], client_ip(), cur=cur)
        finish_sign_in(staff, "api", cur)
    return jsonify({"token": token, "expires_at": expires_at.isoformat(), "role": staff["role"]})


@bp.post("/logout")
def revoke_token():
    staff = current_staff()
    if staff is None:
        raise ApiError(401, "unauthorized", "sign in first")
    staff_store().revoke(_bearer())
    staff_store().audit(staff["username"], "sign_out", role=staff["role"], ip=client_ip(), detail={"via": "api"})
    return jsonify({"ok": True})


@bp.get("/me")
def me():
    staff = current_staff()
    if staff is None:
        raise ApiError(401, "unauthorized", "sign in first")
    return jsonify({"username": staff["username"], "role": staff["role"], "scope": staff.get("scope", "full"),
                    "totp_enrolled": totp_store().status(staff["id"])})


@bp.post("/step-up")
@code_limits
def step_up_token():
    """Ask again before a change that moves money: the password or a fresh one-time code makes this token able to
    make such changes for GATEWAY_STEP_UP_MINUTES (docs/security.md)."""
    staff = current_staff()
    if staff is None:
        raise ApiError(401, "unauthorized", "sign in first")
    if staff.get("scope", "full") != "full":
        raise ApiError(403, "enrolment_required", "enrol two-factor sign-in first")
    data = load_body(StepUpSchema)
    if not step_up(staff, password=data.get("password"), code=data.get("code")):
        raise ApiError(401, "unauthorized", "wrong password or already used one-time code")
    minutes = current_app.config["STEP_UP_MINUTES"]
    return jsonify({"ok": True, "valid_minutes": minutes, "fresh": is_fresh(staff)})


@bp.post("/totp")
@code_limits
def totp_begin():
    """Start enrolment: a fresh secret and its otpauth:// URI (shown once; an admin resets a lost one)."""
    staff = current_staff()
    if staff is None:
        raise ApiError(401, "unauthorized", "sign in first")
    load_body(EmptySchema)
    started = totp_store().begin(staff["id"], staff["username"])
    if started is None:
        raise ApiError(409, "conflict", "two-factor sign-in is already enrolled; an admin can reset it")
    staff_store().audit(staff["username"], "totp_enrolment_started", role=staff["role"], ip=client_ip())
    return jsonify(started)


@bp.post("/totp/confirm")
@code_limits
def totp_confirm():
    staff = current_staff()
    if staff is None:
        raise ApiError(401, "unauthorized", "sign in first")
    data = load_body(TotpCodeSchema)
    if not totp_store().confirm(staff["id"], data["code"]):
        staff_store().audit(staff["username"], "totp_enrolled", outcome="failed", role=staff["role"], ip=client_ip())
        raise ApiError(422, "validation_failed", "wrong code", {"code": ["wrong or expired code"]})
    store = staff_store()
    with store.db.transaction() as cur:
        store.audit(staff["username"], "totp_enrolled", role=staff["role"], ip=client_ip(), cur=cur)
        if staff.get("scope") == "enrol":
            finish_sign_in(staff, "api", cur)
    if staff.get("scope") == "enrol":
        store.upgrade_token(_bearer(), current_app.config["TOKEN_TTL_HOURS"])
    return jsonify({"ok": True, "totp_enrolled": True})


def document(spec, op):
    """The TOTP enrolment calls in the OpenAPI document (gateway/openapi.py). Staff and directions management
    (gateway/api/manage.py) are left out on purpose: a fuzzer holding an admin token would reconfigure the
    system under the rest of the suite; docs/pages.md lists them."""
    spec.components.schema("TotpCode", schema=TotpCodeSchema)
    spec.path("/api/v1/auth/totp", operations={"post": op(
        "Start TOTP enrolment: a new secret and its otpauth:// URI (409 once enrolled)", "Empty", ("200", None),
        ("400", "401", "409", "422", "429"), tag="staff")})
    spec.path("/api/v1/auth/totp/confirm", operations={"post": op(
        "Finish TOTP enrolment with a first code; an enrolment token becomes a full one", "TotpCode",
        ("200", None), ("400", "401", "422", "429"), tag="staff")})
    spec.components.schema("StepUp", schema=StepUpSchema)
    spec.path("/api/v1/auth/step-up", operations={"post": op(
        "Step-up: the password or a fresh one-time code again, before a change that moves money (valid a few "
        "minutes for this token); such changes answer 401 `step_up_required` without it", "StepUp",
        ("200", None), ("400", "401", "403", "422", "429"), tag="staff")})
    spec.path("/api/v1/auth/me", operations={"get": op(
        "Who the token belongs to", ok=("200", None), errors=("401",), tag="staff")})
