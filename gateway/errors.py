"""One error mapping for the whole API: JSON {"error": CODE, "message": ..., "fields": {...}} (docs/architecture.md,
"Gateway")."""
import logging

from flask import jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from libs import errors
from libs.rpc_client import RemoteError, ServiceUnavailable

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status, code, message, fields=None, headers=None):
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or {}
        self.headers = headers or {}


MAPPED = [
    (errors.ValidationFailed, 422, "validation_failed"),
    (errors.NotFound, 404, "not_found"),
    (errors.Conflict, 409, "conflict"),
    (errors.Forbidden, 403, "forbidden"),
    (ServiceUnavailable, 503, "service_unavailable"),
]


def error_response(status, code, message, fields=None):
    body = {"error": code, "message": message}
    if fields:
        body["fields"] = fields
    response = jsonify(body)
    response.status_code = status
    return response


def init_app(app):
    @app.errorhandler(ApiError)
    def _api_error(exc):
        response = error_response(exc.status, exc.code, exc.message, exc.fields)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(ValidationError)
    def _schema_error(exc):
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        return error_response(422, "validation_failed", "invalid input", messages)

    for cls, status, code in MAPPED:
        def handler(exc, status=status, code=code):
            return error_response(status, code, getattr(exc, "message", None) or str(exc),
                                  getattr(exc, "fields", None))
        app.register_error_handler(cls, handler)

    @app.errorhandler(RemoteError)
    def _remote_error(exc):
        log.error("service error: %s", exc)
        return error_response(500, "internal_error", "internal error")

    @app.errorhandler(HTTPException)
    def _http_error(exc):
        code = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type",
                429: "too_many_requests"}.get(exc.code, "http_error")
        return error_response(exc.code, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error")
