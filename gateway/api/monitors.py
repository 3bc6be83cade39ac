"""The rates file the monitors read (docs/monitors.md): `GET /rates.xml` (the Estandards/BestChange format) and its
JSON twin `GET /rates.json`. Public, no sign-in.

The orders service keeps the document rendered with a version (services/orders/store/monitor_export.py); each
gateway worker holds the last version in memory and asks orders at most once per MONITOR_EXPORT_CHECK_SECONDS
whether it changed (a version comparison: the document travels only when it did). Meanwhile every request is
answered from memory (gzip-compressed once per version for clients that accept it), and a conditional GET with
the current ETag or Last-Modified gets a bodyless 304. A monitor
polling every few seconds therefore costs no query and no RPC of its own.
"""
import email.utils
import gzip
import logging
import threading
import time
from datetime import datetime

from flask import Blueprint, Response, current_app, jsonify, request
from marshmallow import fields

from gateway import rpc
from gateway.api import load_body
from gateway.schemas import StrictSchema
from gateway.security.caller import actor, require
from gateway.security.staff import ADMIN, READ

log = logging.getLogger(__name__)

bp = Blueprint("monitors", __name__)


class ExportCache:
    """The last document this worker got from orders, and when it last asked."""

    def __init__(self):
        self.version = None
        self.xml = b""
        self.json = b""
        self.xml_gzip = b""             # compressed once per version: monitors that accept gzip get 1/10 the bytes
        self.json_gzip = b""
        self.etag = None
        self.last_modified = None       # HTTP date of when the document last changed
        self.checked_at = 0.0
        self._lock = threading.Lock()

    def current(self, check_seconds):
        """The document, asking orders first when the last check is older than `check_seconds`. Only one thread
        of the worker asks; the others answer from memory meanwhile (if it has anything yet)."""
        due = time.monotonic() - self.checked_at >= check_seconds
        if due or self.version is None:
            blocking = self.version is None       # nothing to serve yet: wait for the first answer
            if self._lock.acquire(blocking=blocking):
                try:
                    if self.version is None or time.monotonic() - self.checked_at >= check_seconds:
                        self._refresh()
                finally:
                    self._lock.release()
        return self

    def _refresh(self):
        try:
            answer = rpc.service("orders").monitor_export_document(self.version)
        except Exception:
            if self.version is None:
                raise
            # orders unreachable: keep serving the last document (checked again at the next beat)
            log.warning("the monitors' file could not be checked: serving version %s", self.version, exc_info=True)
            self.checked_at = time.monotonic()
            return
        if not answer["unchanged"]:
            self.xml = answer["xml"].encode("utf-8")
            self.json = answer["json"].encode("utf-8")
            self.xml_gzip = gzip.compress(self.xml, compresslevel=6, mtime=0)
            self.json_gzip = gzip.compress(self.json, compresslevel=6, mtime=0)
            self.version = answer["version"]
            self.etag = "mx-%d" % answer["version"]
            changed = datetime.fromisoformat(answer["rendered_at"])
            self.last_modified = email.utils.format_datetime(changed, usegmt=True)
        self.checked_at = time.monotonic()


def _cache():
    return current_app.extensions.setdefault("monitor_export", ExportCache())


def _answer(kind, mimetype):
    cache = _cache().current(current_app.config["MONITOR_EXPORT_CHECK_SECONDS"])
    compressed = "gzip" in request.accept_encodings
    # one tag per representation (XML or JSON, plain or gzip), as a strong ETag must
    etag = "%s-%s%s" % (cache.etag, kind[0], "-gz" if compressed else "")
    response = Response(status=200, mimetype=mimetype)
    response.set_etag(etag)
    response.headers["Last-Modified"] = cache.last_modified
    # Revalidate every time (the answer may change with the next rate): a 304 costs nothing here.
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Vary"] = "Accept-Encoding"
    if request.if_none_match and etag in request.if_none_match:
        response.status_code = 304
        return response
    if not request.if_none_match and request.headers.get("If-Modified-Since") == cache.last_modified:
        response.status_code = 304
        return response
    if compressed:
        response.headers["Content-Encoding"] = "gzip"
        response.set_data(getattr(cache, kind + "_gzip"))
    else:
        response.set_data(getattr(cache, kind))
    return response


@bp.get("/rates.xml")
def rates_xml():
    return _answer("xml", "application/xml")


@bp.get("/rates.json")
def rates_json():
    return _answer("json", "application/json")


# -- the admin's side: the state of the file and the maintenance switch (audited by orders and here) -------------
@bp.get("/api/v1/admin/monitors")
@require(READ)
def monitors_state():
    return jsonify(rpc.service("orders").monitor_export_state())


@bp.put("/api/v1/admin/monitors/maintenance")
@require(ADMIN)
def set_maintenance():
    data = load_body(MaintenanceSchema)
    return jsonify(rpc.service("orders").set_monitor_maintenance(data["maintenance"], actor()))


class MaintenanceSchema(StrictSchema):
    maintenance = fields.Boolean(required=True, metadata={
        "description": "true: the monitors' file is an empty <rates/> until switched off"})


def document(spec, op):
    """Adds the public paths of this module to the OpenAPI document (called by gateway/openapi.py)."""
    for path, mimetype, what in (("/rates.xml", "application/xml", "Estandards/BestChange XML"),
                                 ("/rates.json", "application/json", "JSON: {rates: [item...]}")):
        spec.path(path, operations={"get": {
            "summary": "The rates file for the monitors (%s; docs/monitors.md)" % what, "tags": ["monitors"],
            "responses": {"200": {"description": "the rates", "content": {mimetype: {}}},
                          "304": {"description": "not changed since the ETag or Last-Modified sent"}}}})
    # The admin endpoints stay out of the document, like the other admin changes (docs/pages.md, "Admin API
    # added"): the schemathesis test fuzzes every documented path with the admin's token.
