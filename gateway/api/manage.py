"""Admin API: directions and currencies (orders service, audited there), staff accounts, their sessions and the
gateway's audit log (sign-ins, failures, every admin change). Reads for every role where harmless; changes admin-only."""
from flask import Blueprint, jsonify, request

from gateway import rpc
from gateway.api import load_body
from gateway.errors import ApiError
from gateway.schemas import (CurrencyCreateSchema, CurrencyUpdateSchema, DirectionCreateSchema,
                             DirectionUpdateSchema, EmptySchema, StaffCreateSchema, StaffUpdateSchema)
from gateway.security.alerts import alert_change
from gateway.security.caller import actor, client_ip, current_staff, require
from gateway.security.lockout import lockout_store
from gateway.security.sessions import session_store
from gateway.security.staff import ADMIN, KEEP, READ, staff_store
from gateway.security.stepup import require_step_up
from gateway.security.totp import totp_store

bp = Blueprint("manage_api", __name__, url_prefix="/api/v1/admin")

MAX_INT = 2**31 - 1


def orders():
    return rpc.service("orders")


# -- directions and currencies -------------------------------------------------------------------------------------
@bp.get("/directions")
@require(READ)
def list_directions():
    return jsonify(orders().list_directions(False))


@bp.post("/directions")
@require(ADMIN)
@require_step_up
def create_direction():
    return jsonify(orders().create_direction(load_body(DirectionCreateSchema), actor())), 201


@bp.patch("/directions/<int:direction_id>")
@require(ADMIN)
@require_step_up
def update_direction(direction_id):
    return jsonify(orders().update_direction(min(direction_id, MAX_INT), load_body(DirectionUpdateSchema), actor()))


@bp.get("/currencies")
@require(READ)
def list_currencies():
    return jsonify(orders().list_currencies())


@bp.post("/currencies")
@require(ADMIN)
@require_step_up
def create_currency():
    return jsonify(orders().create_currency(load_body(CurrencyCreateSchema), actor())), 201


@bp.patch("/currencies/<code>")
@require(ADMIN)
@require_step_up
def update_currency(code):
    if len(code) > 16:
        raise ApiError(404, "not_found", "currency not found")
    return jsonify(orders().update_currency(code, load_body(CurrencyUpdateSchema), actor()))


# -- staff ---------------------------------------------------------------------------------------------------------
def _staff_wire(row):
    return {"id": row["id"], "username": row["username"], "role": row["role"], "active": row["active"],
            "email": row.get("email"),
            "totp_required": row["totp_required"], "totp_enrolled": row.get("totp_enrolled"),
            "locked_until": row["locked_until"].isoformat() if row.get("locked_until") else None,
            "created_at": row["created_at"].isoformat(), "created_by": row.get("created_by")}


def _get_staff(staff_id):
    for row in staff_store().list():
        if row["id"] == staff_id:
            return row
    raise ApiError(404, "not_found", "staff member not found")


@bp.get("/staff")
@require(ADMIN)
def list_staff():
    return jsonify([_staff_wire(r) for r in staff_store().list()])


@bp.post("/staff")
@require(ADMIN)
@require_step_up
def create_staff():
    data = load_body(StaffCreateSchema)
    me = current_staff()
    store = staff_store()
    detail = {"staff": data["username"], "role": data["role"], "totp_required": data["totp_required"],
              "email": data["email"]}
    try:
        with store.db.transaction() as cur:
            staff_id = store.create(data["username"], data["password"], data["role"],
                                    totp_required=data["totp_required"], created_by=me["username"], cur=cur,
                                    email=data["email"])
            store.audit(me["username"], "staff_create", role=me["role"], ip=client_ip(), detail=detail, cur=cur)
            alert_change(cur, actor(), "staff_create", detail)
    except ValueError as exc:
        raise ApiError(409, "conflict", str(exc))
    return jsonify(_staff_wire(_get_staff(staff_id))), 201


@bp.patch("/staff/<int:staff_id>")
@require(ADMIN)
@require_step_up
def update_staff(staff_id):
    data = load_body(StaffUpdateSchema)
    me = current_staff()
    target = _get_staff(min(staff_id, MAX_INT))
    demoting = data.get("active") is False or ("role" in data and data["role"] != "admin")
    if target["id"] == me["id"] and (demoting or "password" in data):
        # Your own password changes on the account page, with the current one (a stolen session cannot).
        raise ApiError(409, "conflict", "not on your own account: ask another admin, or use your account page")
    store = staff_store()
    with store.db.transaction() as cur:
        if demoting and target["role"] == "admin":
            # Serialise admin changes so two admins cannot demote each other at once and leave nobody.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('staff-admins'))")
            cur.execute("SELECT count(*) AS n FROM staff WHERE role = 'admin' AND active AND id <> %s", (target["id"],))
            if cur.fetchone()["n"] == 0:
                raise ApiError(409, "conflict", "the last active admin cannot be disabled or demoted")
        try:
            store.update(target["id"], cur, role=data.get("role"), active=data.get("active"),
                         totp_required=data.get("totp_required"), password=data.get("password"),
                         email=data["email"] if "email" in data else KEEP)
        except ValueError as exc:
            raise ApiError(422, "validation_failed", str(exc), {"password": [str(exc)]})
        ended = 0
        if data.get("active") is False or "role" in data or "password" in data:
            # Whatever the session was allowed to do before, it must sign in again under the new rules.
            ended = session_store().revoke_all(target["id"], "changed by admin", cur=cur)
        detail = {"staff": target["username"], "role_before": target["role"],
                  "changes": {k: ("***" if k == "password" else v) for k, v in data.items()}, "sessions_ended": ended}
        store.audit(me["username"], "staff_update", role=me["role"], ip=client_ip(), cur=cur, detail=detail)
        alert_change(cur, actor(), "staff_update", detail)
    return jsonify(_staff_wire(_get_staff(target["id"])))


@bp.post("/staff/<int:staff_id>/reset-totp")
@require(ADMIN)
@require_step_up
def reset_totp(staff_id):
    load_body(EmptySchema)
    me, target = current_staff(), _get_staff(min(staff_id, MAX_INT))
    if target["id"] == me["id"]:
        raise ApiError(409, "conflict", "another admin must reset your second factor")
    store = staff_store()
    with store.db.transaction() as cur:
        totp_store().reset(target["id"], cur=cur)
        session_store().revoke_all(target["id"], "two-factor reset", cur=cur)
        store.audit(me["username"], "staff_reset_totp", role=me["role"], ip=client_ip(),
                    detail={"staff": target["username"]}, cur=cur)
        alert_change(cur, actor(), "staff_reset_totp", {"staff": target["username"], "role": target["role"]})
    return jsonify(_staff_wire(_get_staff(target["id"])))


@bp.post("/staff/<int:staff_id>/unlock")
@require(ADMIN)
def unlock_staff(staff_id):
    load_body(EmptySchema)
    me, target = current_staff(), _get_staff(min(staff_id, MAX_INT))
    lockout_store().unlock(target["username"])
    staff_store().audit(me["username"], "staff_unlock", role=me["role"], ip=client_ip(),
                        detail={"staff": target["username"]})
    return jsonify(_staff_wire(_get_staff(target["id"])))


# -- sessions and audit --------------------------------------------------------------------------------------------
def _session_wire(row):
    return {"id": row["id_hash"][:32], "staff_id": row["staff_id"], "username": row["username"],
            "created_at": row["created_at"].isoformat(), "last_seen_at": row["last_seen_at"].isoformat(),
            "expires_at": row["expires_at"].isoformat(), "ip": row["ip"], "user_agent": row["user_agent"]}


@bp.get("/sessions")
@require(ADMIN)
def list_sessions():
    return jsonify([_session_wire(r) for r in session_store().list_live()])


@bp.delete("/sessions/<session_id>")
@require(ADMIN)
def end_session(session_id):
    """Sessions are named by the first 32 hex digits of their hash (the cookie value cannot be derived)."""
    me = current_staff()
    match = [r for r in session_store().list_live() if r["id_hash"][:32] == session_id[:32]]
    if len(session_id) != 32 or not match:
        raise ApiError(404, "not_found", "no such live session")
    session_store().revoke_hash(match[0]["id_hash"], "ended by %s" % me["username"])
    staff_store().audit(me["username"], "session_end", role=me["role"], ip=client_ip(),
                        detail={"staff": match[0]["username"], "session": session_id})
    return jsonify({"ok": True})


@bp.get("/audit")
@require(ADMIN)
def list_audit():
    try:
        limit = max(1, min(int(request.args.get("limit", 200)), 1000))
        before = int(request.args["before"]) if request.args.get("before") else None
    except ValueError:
        raise ApiError(422, "validation_failed", "invalid input", {"limit": ["must be a number"]})
    rows = staff_store().list_audit(limit=limit, actor=request.args.get("actor") or None, before_id=before)
    return jsonify([{"id": r["id"], "actor": r["actor"], "actor_role": r["actor_role"], "actor_ip": r["actor_ip"],
                     "action": r["action"], "outcome": r["outcome"], "detail": r["detail"],
                     "at": r["created_at"].isoformat()} for r in rows])
