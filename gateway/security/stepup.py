"""Step-up: a change that moves money (docs/security.md, "Step-up and alerts") asks again for the password or a
fresh one-time code, even inside a signed-in session. The answer is remembered for GATEWAY_STEP_UP_MINUTES on that
one browser session or bearer token (gateway.sessions / gateway.api_tokens `stepped_up_at`), never on the account:
a second, stolen session of the same person gains nothing from it.

The API answers a change without a fresh step-up with 401 `step_up_required`; the client calls
POST /api/v1/auth/step-up with {"password"} or {"code"} and retries. The pages show a prompt that re-posts the form
with the password or code (page_step_up below), marked `X-Step-Up: required`."""
import datetime
import functools

from flask import current_app, g, render_template, request

from gateway.errors import ApiError
from gateway.security.caller import client_ip, current_staff
from gateway.security.staff import staff_store
from gateway.security.totp import totp_store

STEP_UP_REQUIRED = "step_up_required"
# Form fields of the page prompt: stripped before the form is handed on, never audited or echoed.
PROMPT_FIELDS = ("step_up_password", "step_up_code", "csrf_token")


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def is_fresh(staff, window_minutes=None):
    """Did this session or token step up within the window?"""
    at = (staff or {}).get("stepped_up_at")
    minutes = current_app.config["STEP_UP_MINUTES"] if window_minutes is None else window_minutes
    return at is not None and _now() - at <= datetime.timedelta(minutes=minutes)


def check_answer(staff, password=None, code=None):
    """True when the password or the one-time code (each a fresh TOTP step, once) is right for this staff member."""
    if code:
        return totp_store().verify(staff["id"], code)
    if password:
        return staff_store().authenticate(staff["username"], password) is not None
    return False


def mark(staff):
    """Remember the step-up on the caller's own session or token (and in g, for the rest of this request)."""
    db = staff_store().db
    with db.transaction() as cur:
        if staff.get("via") == "session":
            cur.execute("UPDATE sessions SET stepped_up_at = now() WHERE id_hash = %s AND revoked_at IS NULL",
                        (g.auth_session["id_hash"],))
        else:
            cur.execute("UPDATE api_tokens SET stepped_up_at = now() WHERE token_hash = %s AND revoked_at IS NULL",
                        (staff["token_hash"],))
    staff["stepped_up_at"] = _now()


def recent_failures(staff):
    row = staff_store().db.fetchone(
        "SELECT count(*) AS n FROM audit_log WHERE actor = %s AND action = 'step_up' AND outcome = 'failed' "
        "AND created_at > now() - make_interval(mins => %s)",
        (staff["username"], int(current_app.config["LOCKOUT_WINDOW_MINUTES"])))
    return row["n"]


def step_up(staff, password=None, code=None):
    """Check the answer, audit it either way, remember it on success. After LOCKOUT_THRESHOLD wrong answers
    within the lockout window no answer is checked (a stolen session cannot guess the password at leisure; the
    API route is rate-limited besides)."""
    detail = {"with": "code" if code else "password", "via": staff.get("via")}
    if recent_failures(staff) >= current_app.config["LOCKOUT_THRESHOLD"]:
        staff_store().audit(staff["username"], "step_up", outcome="blocked", role=staff["role"], ip=client_ip(),
                            detail=detail)
        return False
    ok = check_answer(staff, password, code)
    staff_store().audit(staff["username"], "step_up", outcome="ok" if ok else "failed", role=staff["role"],
                        ip=client_ip(), detail=detail)
    if ok:
        mark(staff)
    return ok


def require_step_up(view):
    """API routes that move money: 401 `step_up_required` unless this token (or page session) stepped up lately.
    Goes below @require (roles are checked first: an analyst gets 403, not an invitation to step up)."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        staff = current_staff()
        if not is_fresh(staff):
            raise ApiError(401, STEP_UP_REQUIRED,
                           "this change needs your password or a one-time code again: POST /api/v1/auth/step-up "
                           "with {\"password\": ...} or {\"code\": ...}, then repeat it (valid %g minutes)"
                           % current_app.config["STEP_UP_MINUTES"])
        return view(*args, **kwargs)
    wrapper.step_up = True
    wrapper.required_roles = getattr(view, "required_roles", None)
    return wrapper


def page_step_up(when=None):
    """Operator pages that move money (below @staff_page): without a fresh step-up, a prompt that posts the same
    form again with the password or code; with a right answer the action runs at once (no second click)."""
    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            staff = g.staff
            if (when is None or when(**kwargs)) and not is_fresh(staff):
                password = request.form.get("step_up_password") or None
                code = (request.form.get("step_up_code") or "").strip() or None
                error = None
                if password or code:
                    if step_up(staff, password=password, code=code):
                        return view(*args, **kwargs)
                    error = "Wrong password or code."
                g.action_outcome = "step_up_required"   # the request audit says nothing was changed
                carried = [(k, v) for k, values in request.form.lists() for v in values if k not in PROMPT_FIELDS]
                return render_template("admin/step_up.html", action=request.path, carried=carried, error=error,
                                       enrolled=totp_store().status(staff["id"]),
                                       minutes=current_app.config["STEP_UP_MINUTES"]), \
                    200, {"X-Step-Up": "required"}  # a page, not an error: the browser shows the prompt
            return view(*args, **kwargs)
        wrapper.step_up = True
        wrapper.required_roles = getattr(view, "required_roles", None)
        return wrapper
    return decorator
