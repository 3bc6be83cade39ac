"""Customer accounts API (docs/partners.md): sign-up with e-mail confirmation, bearer tokens for accounts,
password reset by e-mail, the account's exchanges and its inbox of private messages.

Account tokens are not staff tokens: they start with `acc_`, live in the orders service (accounts are customers,
which orders owns) and open only /api/v1/account and /api/v1/partner; a staff token opens none of these, an account
token none of the staff routes. The gateway makes every token and sends orders only its SHA-256.
"""
import functools
import hashlib
import secrets
import uuid

from flask import Blueprint, g, jsonify, request
from marshmallow import Schema, fields, validate

from gateway import rpc
from gateway.api import load_body, load_query
from gateway.errors import ApiError, error_response
from gateway.schemas import StrictSchema
from gateway.security.caller import client_ip
from gateway.security.ratelimits import ip_key, limiter
from libs import config

bp = Blueprint("account_api", __name__, url_prefix="/api/v1/account")

TOKEN_PREFIX = "acc_"
PASSWORD = dict(validate=validate.Length(min=10, max=256), metadata={"description": "at least 10 characters"})


def api_token_ttl_seconds():
    return config.env_float("ACCOUNT_TOKEN_TTL_HOURS", 24.0) * 3600


def api_token_idle_seconds():
    """An API token unused this long ends (each use moves its last_seen_at on)."""
    return config.env_float("ACCOUNT_TOKEN_IDLE_MINUTES", 60.0) * 60


def orders():
    return rpc.service("orders")


def hash_token(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


def new_token():
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def inbox_owner(account):
    """The private messages of an account (the notifier's owner key; partners' credits arrive there)."""
    return "partner:%s" % account["id"]


# -- who is calling ------------------------------------------------------------------------------------------------
def current_account():
    """The account of `Authorization: Bearer acc_…`, or None."""
    if "account" in g:
        return g.account
    g.account = None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        token = header[7:].strip()
        if token.startswith(TOKEN_PREFIX) and len(token) < 100:
            g.account = orders().account_for_session(hash_token(token), api_token_idle_seconds())
    return g.account


def require_account(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current_account() is None:
            raise ApiError(401, "unauthorized", "sign in first: POST /api/v1/account/token")
        return view(*args, **kwargs)
    return wrapper


# -- rate limits on the endpoints that check a password or send a letter -----------------------------------------
def _submitted_email():
    data = request.get_json(silent=True) if request.is_json else None
    email = (data or {}).get("email") if isinstance(data, dict) else request.form.get("email")
    return (email if isinstance(email, str) else "")[:254].strip().lower()


def _ip_and_email():
    return "%s|%s" % (client_ip(), _submitted_email())


def account_limits(view):
    """Per (address, e-mail) and per address, separately for each endpoint; POST only."""
    view = limiter.limit(lambda: config.env("ACCOUNT_RATE_LIMIT", "10 per minute"),
                         key_func=_ip_and_email, methods=["POST"])(view)
    return limiter.limit(lambda: config.env("ACCOUNT_RATE_LIMIT_IP", "60 per minute"),
                         key_func=ip_key, methods=["POST"])(view)


def account_letter_limits(view):
    """Sign-up and reset letters to one address (docs/security.md, "Throttles and lockout"): one count per e-mail
    shared by both endpoints (API and cabinet pages), whatever the client address, so a script cannot fill one
    inbox from many addresses; 429 with Retry-After. The notifier's cap per recipient stays behind it."""
    return limiter.shared_limit(lambda: config.env("ACCOUNT_LETTER_RATE_LIMIT", "5 per hour"), scope="account-letters",
                                key_func=lambda: "letters|" + _submitted_email(), methods=["POST"],
                                exempt_when=lambda: not _submitted_email())(view)


# -- schemas -------------------------------------------------------------------------------------------------------
class SignupSchema(StrictSchema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, **PASSWORD)
    language = fields.String(load_default="en", validate=validate.OneOf(["en", "ru"]))


class ConfirmSchema(StrictSchema):
    token = fields.String(required=True, validate=validate.Length(min=16, max=100))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256),
                             metadata={"description": "the password chosen at the sign-up this link confirms"})


CODE = dict(validate=validate.Regexp(r"^[0-9 ]{6,8}$"), metadata={"description": "6 digits from the app"})


class AccountLoginSchema(StrictSchema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))
    code = fields.String(**CODE)


class PasswordChangeSchema(StrictSchema):
    current_password = fields.String(required=True, validate=validate.Length(min=1, max=256))
    password = fields.String(required=True, **PASSWORD)


class TotpCodeSchema(StrictSchema):
    code = fields.String(required=True, **CODE)


class TotpDisableSchema(StrictSchema):
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))
    code = fields.String(required=True, **CODE)


class TotpEnrolmentSchema(Schema):
    secret = fields.String(required=True, metadata={"description": "base32, shown once"})
    otpauth_uri = fields.String(required=True)


class DestinationConfirmSchema(StrictSchema):
    token = fields.String(required=True, validate=validate.Length(min=16, max=100))


class DestinationSchema(Schema):
    currency = fields.String()
    to_account = fields.String()
    confirmed = fields.Boolean()


class ResetRequestSchema(StrictSchema):
    email = fields.Email(required=True, validate=validate.Length(max=254))


class ResetSchema(StrictSchema):
    token = fields.String(required=True, validate=validate.Length(min=16, max=100))
    password = fields.String(required=True, **PASSWORD)


class PageQuerySchema(StrictSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Regexp(r"^[0-9]{1,18}$"))


class MessagesQuerySchema(PageQuerySchema):
    unread_only = fields.Boolean(load_default=False)


class MarkReadSchema(StrictSchema):
    ids = fields.List(fields.Integer(strict=True, validate=validate.Range(min=1, max=2**63 - 1)), required=True,
                      validate=validate.Length(min=1, max=200))


class AccountPartnerSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    active = fields.Boolean()


class AccountSchema(Schema):
    id = fields.Integer(required=True)
    email = fields.String(required=True)
    language = fields.String()
    email_confirmed = fields.Boolean()
    totp_enabled = fields.Boolean()
    created_at = fields.String()
    partner = fields.Nested(AccountPartnerSchema, allow_none=True)


class AccountTokenSchema(Schema):
    token = fields.String(required=True, metadata={"description": "send as `Authorization: Bearer acc_…`"})
    expires_at = fields.String(required=True)
    account = fields.Nested(AccountSchema)


class AcceptedSchema(Schema):
    status = fields.String(required=True)
    message = fields.String()


# -- sign-up, confirmation, sign-in --------------------------------------------------------------------------------
ACCEPTED_SIGNUP = {"status": "accepted",
                   "message": "If this address can be used, a letter with a confirmation link is on its way."}
ACCEPTED_RESET = {"status": "accepted",
                  "message": "If an account uses this address, a letter with a reset link is on its way."}


def signup(email, password, language):
    """Shared by the API and the sign-up page. The answer never tells whether the address has an account."""
    orders().account_signup(email, password, language, "signup-" + uuid.uuid4().hex)


def request_reset(email):
    orders().account_password_reset_request(email, "reset-" + uuid.uuid4().hex)


def sign_in(email, password, kind, ttl_seconds, code=None):
    """(token, result) where result is orders' answer: {"ok", "account", "expires_at"} or {"ok": False, "reason"
    (invalid, unconfirmed, code_required, throttled with retry_after)}."""
    token = new_token() if kind == "api" else secrets.token_urlsafe(32)
    result = orders().account_sign_in(email, password, hash_token(token), kind, ttl_seconds, client_ip(),
                                      code or None)
    return token, result


def throttled(retry_after):
    """429 with Retry-After: this e-mail failed too often from this address (docs/security.md)."""
    response = error_response(429, "too_many_requests",
                              "too many failed sign-ins for this e-mail from this address: try again later")
    response.headers["Retry-After"] = str(int(retry_after))
    return response


@bp.post("/signup")
@account_limits
@account_letter_limits
def signup_api():
    data = load_body(SignupSchema)
    signup(data["email"], data["password"], data["language"])
    return jsonify(ACCEPTED_SIGNUP), 202


@bp.post("/confirm")
@account_limits
def confirm_api():
    data = load_body(ConfirmSchema)
    return jsonify(orders().account_confirm(data["token"], data["password"]))


@bp.post("/token")
@account_limits
def token_api():
    data = load_body(AccountLoginSchema)
    token, result = sign_in(data["email"], data["password"], "api", api_token_ttl_seconds(), data.get("code"))
    if not result["ok"]:
        if result["reason"] == "throttled":
            return throttled(result["retry_after"])
        if result["reason"] == "unconfirmed":
            raise ApiError(403, "email_not_confirmed", "confirm your e-mail first: open the link in our letter")
        if result["reason"] == "code_required":
            raise ApiError(401, "totp_required", "this account has two-factor codes on: send `code` from the app",
                           {"code": ["required"]})
        raise ApiError(401, "unauthorized", "wrong e-mail, password or code")
    return jsonify({"token": token, "expires_at": result["expires_at"], "account": result["account"]})


@bp.delete("/token")
@require_account
def revoke_api():
    orders().account_sign_out(hash_token(request.headers["Authorization"][7:].strip()))
    return jsonify({"ok": True})


@bp.post("/password-reset")
@account_limits
@account_letter_limits
def reset_request_api():
    data = load_body(ResetRequestSchema)
    request_reset(data["email"])
    return jsonify(ACCEPTED_RESET), 202


@bp.post("/password-reset/confirm")
@account_limits
def reset_api():
    data = load_body(ResetSchema)
    return jsonify(orders().account_password_reset(data["token"], data["password"]))


@bp.post("/destinations/confirm")
@account_limits
def destination_confirm_api():
    """The link of a withdrawal letter: the new destination is confirmed (no sign-in: the link proves the mailbox)."""
    data = load_body(DestinationConfirmSchema)
    return jsonify(orders().confirm_withdrawal_destination(data["token"]))


# -- the account ---------------------------------------------------------------------------------------------------
def _bearer_hash():
    return hash_token(request.headers["Authorization"][7:].strip())


@bp.get("")
@require_account
def me():
    return jsonify(current_account())


@bp.post("/password")
@account_limits
@require_account
def change_password_api():
    """A new password (the current one required); every other session ends; a letter tells the address."""
    data = load_body(PasswordChangeSchema)
    return jsonify(orders().account_change_password(current_account()["id"], data["current_password"],
                                                    data["password"], _bearer_hash()))


@bp.post("/totp")
@require_account
def totp_begin_api():
    """Start enrolling two-factor codes: the secret (shown once) and its otpauth:// address for the app."""
    return jsonify(orders().account_totp_begin(current_account()["id"]))


@bp.post("/totp/confirm")
@account_limits
@require_account
def totp_confirm_api():
    data = load_body(TotpCodeSchema)
    return jsonify(orders().account_totp_confirm(current_account()["id"], data["code"]))


@bp.post("/totp/disable")
@account_limits
@require_account
def totp_disable_api():
    data = load_body(TotpDisableSchema)
    return jsonify(orders().account_totp_disable(current_account()["id"], data["password"], data["code"]))


@bp.get("/orders")
@require_account
def my_orders():
    q = load_query(PageQuerySchema)
    return jsonify(orders().account_orders(current_account()["id"], q["limit"], q.get("cursor")))


@bp.get("/messages")
@require_account
def my_messages():
    q = load_query(MessagesQuerySchema)
    return jsonify(rpc.service("notifier").list_messages(inbox_owner(current_account()), q["unread_only"],
                                                         q["limit"], q.get("cursor")))


@bp.post("/messages/read")
@require_account
def mark_read():
    data = load_body(MarkReadSchema)
    return jsonify(rpc.service("notifier").mark_read(inbox_owner(current_account()), data["ids"]))


# -- OpenAPI -------------------------------------------------------------------------------------------------------
def document(spec, op):
    """This module's schemas and paths in the OpenAPI document (called by gateway/openapi.py)."""
    for name, schema in (("Signup", SignupSchema), ("AccountConfirm", ConfirmSchema),
                         ("AccountLogin", AccountLoginSchema), ("ResetRequest", ResetRequestSchema),
                         ("PasswordReset", ResetSchema), ("MarkRead", MarkReadSchema), ("Account", AccountSchema),
                         ("AccountPasswordChange", PasswordChangeSchema), ("AccountTotpCode", TotpCodeSchema),
                         ("AccountTotpDisable", TotpDisableSchema), ("AccountTotpEnrolment", TotpEnrolmentSchema),
                         ("AccountDestinationConfirm", DestinationConfirmSchema),
                         ("AccountDestination", DestinationSchema),
                         ("AccountToken", AccountTokenSchema), ("Accepted", AcceptedSchema)):
        spec.components.schema(name, schema=schema)
    spec.components.security_scheme("account", {"type": "http", "scheme": "bearer",
                                                "description": "an account token (acc_…), not a staff token"})
    page = [{"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
            {"name": "cursor", "in": "query", "required": False,
             "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}]

    def acc(operation):
        operation["security"] = [{"account": []}]
        operation["responses"]["401"] = {"$ref": "#/components/responses/Error"}
        return operation
    tag = "account"
    spec.path("/api/v1/account/signup", operations={"post": op(
        "Sign up: a confirmation letter goes to the e-mail (same answer whether or not it has an account)",
        "Signup", ("202", "Accepted"), ("400", "422", "429"), tag=tag)})
    spec.path("/api/v1/account/confirm", operations={"post": op(
        "Confirm the e-mail with the token of the letter's link and the password chosen at that sign-up",
        "AccountConfirm", ("200", "Account"), ("400", "422", "429"), tag=tag)})
    spec.path("/api/v1/account/token", operations={
        "post": op("Sign in: an account bearer token (acc_…); `code` when the account has two-factor codes on; "
                   "429 with Retry-After after repeated failures of this e-mail from this address",
                   "AccountLogin", ("200", "AccountToken"), ("400", "401", "403", "422", "429"), tag=tag),
        "delete": acc(op("Sign out: revoke this token", ok=("200", None), errors=(), tag=tag))})
    spec.path("/api/v1/account/password-reset", operations={"post": op(
        "Ask for a password reset letter (same answer whether or not the e-mail has an account)",
        "ResetRequest", ("202", "Accepted"), ("400", "422", "429"), tag=tag)})
    spec.path("/api/v1/account/password-reset/confirm", operations={"post": op(
        "Set a new password with the token of the reset letter; every session of the account ends",
        "PasswordReset", ("200", "Account"), ("400", "422", "429"), tag=tag)})
    spec.path("/api/v1/account", operations={"get": acc(op(
        "The signed-in account", ok=("200", "Account"), errors=(), tag=tag))})
    spec.path("/api/v1/account/password", operations={"post": acc(op(
        "Change the password (the current one required); every other session ends; a letter tells the address",
        "AccountPasswordChange", ("200", "Account"), ("400", "422", "429"), tag=tag))})
    spec.path("/api/v1/account/totp", operations={"post": acc(op(
        "Start enrolling two-factor codes: the secret, shown once", ok=("200", "AccountTotpEnrolment"), errors=("409",),
        tag=tag))})
    spec.path("/api/v1/account/totp/confirm", operations={"post": acc(op(
        "Switch two-factor codes on with a first code from the app", "AccountTotpCode", ("200", "Account"),
        ("400", "422", "429"), tag=tag))})
    spec.path("/api/v1/account/totp/disable", operations={"post": acc(op(
        "Switch two-factor codes off (password and a current code)", "AccountTotpDisable", ("200", "Account"),
        ("400", "422", "429"), tag=tag))})
    spec.path("/api/v1/account/destinations/confirm", operations={"post": op(
        "Confirm a new withdrawal destination with the token of the withdrawal letter's link (once, expires)",
        "AccountDestinationConfirm", ("200", "AccountDestination"), ("400", "422", "429"), tag=tag)})
    spec.path("/api/v1/account/orders", operations={"get": acc(op(
        "The account's exchanges: every order placed with its confirmed e-mail, newest first",
        ok=("200", "OrderList"), errors=("422",), params=page, tag=tag))})
    spec.path("/api/v1/account/messages", operations={"get": acc(op(
        "The account's private messages (e.g. partner commission credited), newest first",
        ok=("200", "MessageList"), errors=("422",), params=page + [
            {"name": "unread_only", "in": "query", "required": False, "schema": {"type": "boolean"}}],
        tag=tag))})
    spec.path("/api/v1/account/messages/read", operations={"post": acc(op(
        "Mark messages read", "MarkRead", ("200", None), ("400", "422"), tag=tag))})
