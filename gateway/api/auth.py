"""Staff sign-in for the API: username + password -> bearer token."""
from flask import Blueprint, current_app, jsonify, request

from gateway.api import load_body
from gateway.auth import client_ip, current_staff, staff_store
from gateway.errors import ApiError
from gateway.schemas import LoginSchema

bp = Blueprint("auth_api", __name__, url_prefix="/api/v1/auth")


@bp.post("/token")
def issue_token():
    data = load_body(LoginSchema())
    store = staff_store()
    staff = store.authenticate(data["username"], data["password"])
    if staff is None:
        store.audit(data["username"], "sign_in", outcome="failed", ip=client_ip())
        raise ApiError(401, "unauthorized", "wrong username or password")
    token, expires_at = store.issue_token(staff, current_app.config["TOKEN_TTL_HOURS"], client_ip())
    store.audit(staff["username"], "sign_in", role=staff["role"], ip=client_ip(), detail={"via": "api"})
    return jsonify({"token": token, "expires_at": expires_at.isoformat(), "role": staff["role"]})


@bp.post("/logout")
def revoke_token():
    staff = current_staff()
    if staff is None:
        raise ApiError(401, "unauthorized", "sign in first")
    staff_store().revoke(request.headers["Authorization"][7:].strip())
    staff_store().audit(staff["username"], "sign_out", role=staff["role"], ip=client_ip())
    return jsonify({"ok": True})
