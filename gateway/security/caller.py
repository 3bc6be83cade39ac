"""Who is calling: `Authorization: Bearer <token>` (the API), or, for reads only (GET/HEAD), the browser's staff
session cookie (the admin pages and their CSV download). A state-changing call is never authenticated by a cookie
outside the CSRF-checked pages (gateway/security/__init__.py explains why)."""
import functools

from flask import current_app, g, request, session

from gateway.errors import ApiError
from gateway.security.sessions import session_store, staff_cookie
from gateway.security.staff import staff_store


def client_ip():
    return request.remote_addr or "-"



def current_staff():
    """The signed-in staff member from `Authorization: Bearer <token>`, or for GET/HEAD the browser session."""
    if "staff" in g:
        return g.staff
    g.staff = None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        token = header[7:].strip()
        if token and len(token) < 200:
            g.staff = staff_store().staff_for_token(token, current_app.config.get("TOKEN_IDLE_MINUTES"))
    elif request.method in ("GET", "HEAD"):
        session = session_store().load(staff_cookie())
        if session is not None and session["stage"] == "full":
            g.staff = {"id": session["staff_id"], "username": session["username"], "role": session["role"],
                       "scope": "full", "via": "session"}
    return g.staff


def actor():
    """The signed-in staff member as the actor passed to the services (libs/audit.py names it)."""
    staff = current_staff()
    return {"name": staff["username"], "role": staff["role"], "staff_id": staff["id"], "ip": client_ip()}


def require(roles):
    """Every admin route names the roles that may call it; 401 without a session, 403 with the wrong role."""
    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            staff = current_staff()
            if staff is None:
                raise ApiError(401, "unauthorized", "sign in first")
            if staff.get("scope", "full") != "full":
                raise ApiError(403, "enrolment_required",
                               "enrol two-factor sign-in first: POST /api/v1/auth/totp, then /api/v1/auth/totp/confirm")
            if staff["role"] not in roles:
                staff_store().audit(staff["username"], "forbidden:%s %s" % (request.method, request.path),
                                    outcome="denied", role=staff["role"], ip=client_ip())
                raise ApiError(403, "forbidden", "your role may not do this")
            return view(*args, **kwargs)
        wrapper.required_roles = roles
        return wrapper
    return decorator


# -- least privilege: what analysts do not see (docs/security.md) ----------------------------------------------------
# An order's token is the customer's key to it (cancel, claim paid, see the account to pay to), and letters carry it
# in their links; analysts read and export figures and need neither.
HIDDEN_FROM_ANALYSTS = "hidden for your role"


def sees_secrets():
    staff = current_staff()
    return staff is not None and staff["role"] != "analyst"


def without_order_token(order):
    if isinstance(order, dict) and not sees_secrets():
        order = dict(order, token=None)
    return order


def without_letter_body(notification):
    if isinstance(notification, dict) and not sees_secrets():
        notification = dict(notification, body_text=HIDDEN_FROM_ANALYSTS, body_html=None)
    return notification
