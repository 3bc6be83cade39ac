"""Notifications: the send log, resending a failed one, notification settings, private messages (operators), and
the Twilio status-callback webhook (no session; Twilio's signature instead)."""
import logging

from flask import Blueprint, current_app, jsonify, request
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from twilio.request_validator import RequestValidator

from gateway import metrics, rpc
from gateway.api import load_body, load_query
from gateway.errors import ApiError
from gateway.schemas import EmptySchema, StrictSchema
from gateway.security.caller import actor, client_ip, require, without_letter_body
from gateway.security.staff import ACT, ADMIN, READ, staff_store
from gateway.security.stepup import require_step_up
from libs import config
from libs.contracts.notifier import ACCOUNT_KINDS, ALERT, CHANNELS, KINDS, STATUSES

LOG_KINDS = KINDS + (ALERT,) + ACCOUNT_KINDS

log = logging.getLogger(__name__)

bp = Blueprint("notifications_api", __name__, url_prefix="/api/v1")

MAX_ID = 2**63 - 1
WEBHOOK_PATH = "/api/v1/webhooks/twilio"


def notifier():
    return rpc.service("notifier")


# -- schemas -----------------------------------------------------------------------------------------------------
class NotificationsQuerySchema(StrictSchema):
    order_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    kind = fields.String(validate=validate.OneOf(LOG_KINDS))
    channel = fields.String(validate=validate.OneOf(CHANNELS))
    status = fields.String(validate=validate.OneOf(STATUSES))
    recipient = fields.String(validate=validate.Length(max=254))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = fields.String(validate=validate.Regexp(r"^[0-9]{1,18}$"))


class SettingsUpdateSchema(StrictSchema):
    """Any subset of the settings; `version` (optional) makes the update a compare-and-set (409 if stale)."""
    sms_enabled = fields.Boolean(truthy={True}, falsy={False})
    admin_email = fields.Email(allow_none=True, validate=validate.Length(max=254))
    admin_phone = fields.String(allow_none=True, validate=validate.Regexp(
        r"^\+[1-9][0-9]{6,14}$", error="international format, e.g. +4915112345678"))
    admin_language = fields.String(validate=validate.OneOf(["en", "ru"]))
    customer_sms_fee = fields.String(validate=validate.Regexp(
        r"^[0-9]{1,2}(\.[0-9]{1,6})?$", error="a percent as a decimal string, 0 to 99.999999, e.g. \"0.5\""),
        metadata={"description": "percent added to the order's fee when the customer opts in to SMS"})
    enabled_kinds = fields.List(fields.String(validate=validate.OneOf(KINDS)), validate=validate.Length(max=20))
    version = fields.Integer(strict=True, validate=validate.Range(min=1, max=2**31 - 1))

    @validates_schema
    def _not_empty(self, data, **kwargs):
        if not set(data) - {"version"}:
            raise ValidationError("nothing to change", "_schema")


class MessagesQuerySchema(StrictSchema):
    owner = fields.String(required=True, validate=validate.Regexp(r"^[a-z]{3,16}:[A-Za-z0-9_.@-]{1,80}$"))
    unread_only = fields.Boolean(load_default=False)
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = fields.String(validate=validate.Regexp(r"^[0-9]{1,18}$"))


class SettingsSchema(Schema):
    sms_enabled = fields.Boolean(required=True)
    sms_configured = fields.Boolean(metadata={"description": "Twilio credentials are present"})
    admin_email = fields.String(allow_none=True)
    admin_phone = fields.String(allow_none=True)
    admin_language = fields.String()
    customer_sms_fee = fields.String(metadata={"description": "percent"})
    enabled_kinds = fields.List(fields.String())
    version = fields.Integer()
    updated_by = fields.String(allow_none=True)
    updated_at = fields.String(allow_none=True)


class NotificationSchema(Schema):
    id = fields.Integer(required=True)
    order_id = fields.Integer(allow_none=True)
    kind = fields.String(metadata={"description": "L1..L10, S1..S5 (the notification matrix), ALERT, SIGNUP, RESET"})
    channel = fields.String(validate=validate.OneOf(CHANNELS))
    audience = fields.String()
    recipient = fields.String()
    language = fields.String()
    subject = fields.String(allow_none=True)
    body_text = fields.String()
    body_html = fields.String(allow_none=True)
    status = fields.String(validate=validate.OneOf(STATUSES))
    attempts = fields.Integer()
    max_attempts = fields.Integer()
    next_attempt_at = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)
    provider_id = fields.String(allow_none=True, metadata={"description": "Message-ID or Twilio MessageSid"})
    provider_status = fields.String(allow_none=True, metadata={"description": "Twilio delivery status"})
    resends = fields.Integer()
    created_at = fields.String()
    updated_at = fields.String()
    sent_at = fields.String(allow_none=True)


class NotificationListSchema(Schema):
    items = fields.List(fields.Nested(NotificationSchema), required=True)
    next_cursor = fields.String(allow_none=True)


class MessageSchema(Schema):
    id = fields.Integer()
    owner = fields.String()
    kind = fields.String()
    order_id = fields.Integer(allow_none=True)
    subject = fields.String()
    body = fields.String()
    created_at = fields.String()
    read_at = fields.String(allow_none=True)


class MessageListSchema(Schema):
    items = fields.List(fields.Nested(MessageSchema))
    unread = fields.Integer()
    next_cursor = fields.String(allow_none=True)


# -- the send log ------------------------------------------------------------------------------------------------
@bp.get("/admin/notifications")
@require(READ)
def list_notifications():
    result = notifier().list_notifications(load_query(NotificationsQuerySchema))
    result["items"] = [without_letter_body(n) for n in result.get("items", [])]
    return jsonify(result)


@bp.get("/admin/notifications/<int:notification_id>")
@require(READ)
def get_notification(notification_id):
    return jsonify(without_letter_body(notifier().get_notification(min(notification_id, MAX_ID))))


@bp.post("/admin/notifications/<int:notification_id>/resend")
@require(ACT)
def resend(notification_id):
    load_body(EmptySchema)
    who = actor()
    try:
        result = notifier().resend(min(notification_id, MAX_ID), who)
    except Exception as exc:
        _audit(who, "notification.resend", "rejected", {"notification_id": notification_id,
                                                         "error": type(exc).__name__})
        raise
    _audit(who, "notification.resend", "ok", {"notification_id": notification_id, "kind": result["kind"],
                                               "channel": result["channel"], "order_id": result["order_id"]})
    return jsonify(result)


# -- settings ----------------------------------------------------------------------------------------------------
@bp.get("/admin/settings")
@require(READ)
def get_settings():
    return jsonify(notifier().get_settings())


@bp.put("/admin/settings")
@require(ADMIN)
@require_step_up
def put_settings():
    data = load_body(SettingsUpdateSchema)
    if "admin_email" in data and not data["admin_email"]:
        # Security alerts go there (docs/security.md): the panel can move them, never switch them off.
        raise ApiError(422, "validation_failed", "invalid input",
                       {"admin_email": ["security alerts go to this address: change it, do not remove it"]})
    version = data.pop("version", None)
    who = actor()
    try:
        result = notifier().put_settings(data, who, version)
    except Exception as exc:
        _audit(who, "settings.update", "rejected", {"changes": data, "error": type(exc).__name__})
        raise
    _audit(who, "settings.update", "ok", {"changes": data, "version": result["version"]})
    return jsonify(result)


# -- private messages --------------------------------------------------------------------------------------------
@bp.get("/admin/messages")
@require(READ)
def list_messages():
    q = load_query(MessagesQuerySchema)
    return jsonify(notifier().list_messages(q["owner"], q["unread_only"], q["limit"], q.get("cursor")))


def _audit(who, action, outcome, detail):
    staff_store().audit(who["name"], action, outcome=outcome, role=who["role"], ip=who["ip"], detail=detail)


# -- Twilio status callbacks -------------------------------------------------------------------------------------
def _public_url():
    """Twilio signs the URL it called: our PUBLIC_URL (what we gave as StatusCallback), not the address the
    request reached behind a proxy."""
    base = (current_app.config.get("PUBLIC_URL") or request.host_url).rstrip("/")
    query = request.query_string.decode("latin-1")
    return base + request.path + ("?" + query if query else "")


@bp.post("/webhooks/twilio")
def twilio_status_callback():
    token = current_app.config.get("TWILIO_AUTH_TOKEN") or config.env("TWILIO_AUTH_TOKEN")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature or len(signature) > 200 or \
            not RequestValidator(token).validate(_public_url(), request.form, signature):
        log.warning("twilio callback with a bad signature from %s", client_ip())
        metrics.TWILIO_BAD_SIGNATURES.labels("bad signature" if token else "no auth token").inc()
        raise ApiError(403, "forbidden", "invalid signature")
    sid = request.form.get("MessageSid", "")
    status = request.form.get("MessageStatus", "")
    if not sid or not status or len(status) > 32:
        raise ApiError(400, "bad_request", "MessageSid and MessageStatus are required")
    result = notifier().sms_status_callback(sid, status, request.form.get("ErrorCode") or None)
    return jsonify(result)


# -- OpenAPI -----------------------------------------------------------------------------------------------------
def document(spec, op):
    """Adds this module's schemas and paths to the OpenAPI document (called by gateway/openapi.py)."""
    for name, schema in (("Notification", NotificationSchema), ("NotificationList", NotificationListSchema),
                         ("Settings", SettingsSchema), ("SettingsUpdate", SettingsUpdateSchema),
                         ("Message", MessageSchema), ("MessageList", MessageListSchema)):
        spec.components.schema(name, schema=schema)
    q = [{"name": n, "in": "query", "required": False, "schema": s} for n, s in [
        ("order_id", {"type": "integer", "minimum": 1}),
        ("kind", {"type": "string", "enum": list(LOG_KINDS)}),
        ("channel", {"type": "string", "enum": list(CHANNELS)}),
        ("status", {"type": "string", "enum": list(STATUSES)}),
        ("recipient", {"type": "string", "maxLength": 254}),
        ("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
        ("cursor", {"type": "string", "pattern": "^[0-9]{1,18}$"})]]
    nid = {"name": "notification_id", "in": "path", "required": True,
           "schema": {"type": "integer", "minimum": 1}}
    spec.path("/api/v1/admin/notifications", operations={"get": op(
        "The send log: every letter, SMS and private message, newest first", ok=("200", "NotificationList"),
        errors=("422",), secured=True, params=q, tag="notifications")})
    spec.path("/api/v1/admin/notifications/{notification_id}", operations={"get": op(
        "One notification with its rendered text and every attempt", ok=("200", "Notification"),
        errors=("404",), secured=True, params=[nid], tag="notifications")})
    spec.path("/api/v1/admin/notifications/{notification_id}/resend", operations={"post": op(
        "Send a failed notification again", "Empty", ("200", "Notification"), ("400", "404", "409", "422"),
        secured=True, params=[nid], tag="notifications")})
    spec.path("/api/v1/admin/settings", operations={
        "get": op("Notification settings", ok=("200", "Settings"), errors=(), secured=True,
                  tag="notifications"),
        "put": op("Change notification settings (admin; audited; mailed to the admin address)",
                  "SettingsUpdate", ("200", "Settings"), ("400", "409", "422"), secured=True,
                  tag="notifications")})
    spec.path("/api/v1/admin/messages", operations={"get": op(
        "Private messages (in-app inbox) of one owner, e.g. partner:<id>", ok=("200", "MessageList"),
        errors=("422",), secured=True, params=[
            {"name": "owner", "in": "query", "required": True, "schema": {"type": "string"}},
            {"name": "unread_only", "in": "query", "required": False, "schema": {"type": "boolean"}},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}}],
        tag="notifications")})
    spec.path(WEBHOOK_PATH, operations={"post": {
        "summary": "Twilio SMS status callback (verified by X-Twilio-Signature; 403 otherwise)",
        "tags": ["webhooks"],
        "parameters": [{"name": "X-Twilio-Signature", "in": "header", "required": True,
                        "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
            "type": "object", "required": ["MessageSid", "MessageStatus"],
            "properties": {"MessageSid": {"type": "string"}, "MessageStatus": {"type": "string"},
                           "ErrorCode": {"type": "string"}}}}}},
        "responses": {"200": {"description": "recorded (applied, duplicate, stale or unknown)"},
                      "400": {"$ref": "#/components/responses/Error"},
                      "403": {"$ref": "#/components/responses/Error"},
                      "503": {"$ref": "#/components/responses/Error"}}}})

