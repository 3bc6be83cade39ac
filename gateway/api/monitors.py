"""The rates file the monitors read (docs/monitors.md): `GET /rates.xml` (the Estandards/BestChange format) and its
JSON twin `GET /rates.json`. Public, no sign-in.

The orders service keeps the document rendered with a version (services/orders/store/monitor_export.py); each
gateway worker holds the last version in memory and asks orders at most once per MONITOR_EXPORT_CHECK_SECONDS
whether it changed (a version comparison: the document travels only when it did). Meanwhile every request is
answered from memory (gzip-compressed once per version for clients that accept it), and a conditional GET with
the current ETag or Last-Modified gets a bodyless 304. A monitor
polling every few seconds therefore costs no query and no RPC of its own.
"""
import collections
import email.utils
import gzip
import logging
import threading
import time
from datetime import datetime

from flask import Blueprint, Response, current_app, jsonify, request
from marshmallow import fields
from werkzeug.http import parse_accept_header, parse_etags, quote_etag

from gateway import metrics, rpc
from gateway.api import load_body
from gateway.schemas import StrictSchema
from gateway.security.caller import actor, require
from gateway.security.headers import CSP_API
from gateway.security.staff import ADMIN, READ

log = logging.getLogger(__name__)

bp = Blueprint("monitors", __name__)


# One version of the document in every form a client may ask for; replaced whole, never changed, so a thread
# reading it while another fetches the next version never pairs one version's body with another's ETag.
Snapshot = collections.namedtuple("Snapshot", "version etag last_modified xml json xml_gzip json_gzip")


class ExportCache:
    """The last document this worker got from orders (`snapshot`), and when it last asked."""

    def __init__(self):
        self.snapshot = None
        self.checked_at = 0.0
        self._lock = threading.Lock()

    def due(self, check_seconds):
        return time.monotonic() - self.checked_at >= check_seconds

    def current(self, check_seconds):
        """The snapshot, asking orders first when the last check is older than `check_seconds`. Only one thread
        of the worker asks; the others answer from memory meanwhile (if it has anything yet)."""
        if self.snapshot is None or self.due(check_seconds):
            blocking = self.snapshot is None       # nothing to serve yet: wait for the first answer
            if self._lock.acquire(blocking=blocking):
                try:
                    if self.snapshot is None or self.due(check_seconds):
                        self._refresh()
                finally:
                    self._lock.release()
        return self.snapshot

    def _refresh(self):
        known = self.snapshot.version if self.snapshot else None
        try:
            answer = rpc.service("orders").monitor_export_document(known)
        except Exception:
            if self.snapshot is None:
                raise
            # orders unreachable: keep serving the last document (checked again at the next beat)
            log.warning("the monitors' file could not be checked: serving version %s", known, exc_info=True)
            self.checked_at = time.monotonic()
            return
        if not answer["unchanged"]:
            xml, json_text = answer["xml"].encode("utf-8"), answer["json"].encode("utf-8")
            changed = datetime.fromisoformat(answer["rendered_at"])
            self.snapshot = Snapshot(
                answer["version"], "mx-%d" % answer["version"], email.utils.format_datetime(changed, usegmt=True),
                xml, json_text,
                # compressed once per version: monitors that accept gzip get a twentieth of the bytes
                gzip.compress(xml, compresslevel=6, mtime=0), gzip.compress(json_text, compresslevel=6, mtime=0))
        self.checked_at = time.monotonic()


def _cache(app=None):
    return (app or current_app).extensions.setdefault("monitor_export", ExportCache())


KINDS = {"/rates.xml": ("xml", "application/xml"), "/rates.json": ("json", "application/json")}


def representation(snapshot, kind, accept_encoding, if_none_match, if_modified_since):
    """(status, headers, body) of one answer from the document in memory: the one rule for the Flask view and
    the WSGI fast path. One ETag per representation (XML or JSON, plain or gzip), as a strong ETag must."""
    compressed = "gzip" in parse_accept_header(accept_encoding or "")
    etag = "%s-%s%s" % (snapshot.etag, kind[0], "-gz" if compressed else "")
    # revalidate every time (the next rate may differ): a 304 costs nothing here. A 304 carries what RFC 9110
    # asks of it (ETag, Cache-Control, Vary), not Last-Modified, as werkzeug's own 304 does.
    headers = [("ETag", quote_etag(etag)), ("Cache-Control", "no-cache"), ("Vary", "Accept-Encoding")]
    if if_none_match:
        if parse_etags(if_none_match).contains(etag):
            return 304, headers, b""
    elif if_modified_since == snapshot.last_modified:
        return 304, headers, b""
    headers.insert(1, ("Last-Modified", snapshot.last_modified))
    if compressed:
        headers.append(("Content-Encoding", "gzip"))
        return 200, headers, getattr(snapshot, kind + "_gzip")
    return 200, headers, getattr(snapshot, kind)


def _answer(path):
    kind, mimetype = KINDS[path]
    snapshot = _cache().current(current_app.config["MONITOR_EXPORT_CHECK_SECONDS"])
    status, headers, body = representation(snapshot, kind, request.headers.get("Accept-Encoding"),
                                           request.headers.get("If-None-Match"),
                                           request.headers.get("If-Modified-Since"))
    response = Response(body, status=status, mimetype=mimetype)
    response.headers.extend(headers)
    return response


@bp.get("/rates.xml")
def rates_xml():
    return _answer("/rates.xml")


@bp.get("/rates.json")
def rates_json():
    return _answer("/rates.json")


class RatesFastPath:
    """WSGI middleware: answers GET/HEAD /rates.xml and /rates.json straight from the worker's memory, without
    Flask's request machinery (a tenth of its CPU per request: monitors poll, and 16 of them at once must not
    queue behind each other). Whenever the version check is due, or nothing is held yet, the request goes through
    Flask instead, which asks orders (with the app context, error handling and logging a call needs). The answer
    carries the headers the Flask path adds (security headers, metrics), so both look the same to a client."""

    def __init__(self, app, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app
        hsts = app.config.get("HSTS_SECONDS")
        self.security = [(k, v) for k, v in (
            ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"), ("Referrer-Policy", "same-origin"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
            ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"),
            ("Strict-Transport-Security", "max-age=%d; includeSubDomains" % hsts if hsts else None),
            ("Content-Security-Policy", CSP_API)) if v]

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO")
        method = environ.get("REQUEST_METHOD")
        if path not in KINDS or method not in ("GET", "HEAD"):
            return self.wsgi_app(environ, start_response)
        cache = _cache(self.app)
        snapshot = cache.snapshot
        if snapshot is None or cache.due(self.app.config["MONITOR_EXPORT_CHECK_SECONDS"]):
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        kind, mimetype = KINDS[path]
        status, headers, body = representation(snapshot, kind, environ.get("HTTP_ACCEPT_ENCODING"),
                                               environ.get("HTTP_IF_NONE_MATCH"),
                                               environ.get("HTTP_IF_MODIFIED_SINCE"))
        headers = headers + self.security
        if status == 200:
            headers += [("Content-Type", mimetype + "; charset=utf-8" if kind == "xml" else mimetype),
                        ("Content-Length", str(len(body)))]
        start_response("200 OK" if status == 200 else "304 NOT MODIFIED", headers)
        metrics.HTTP_REQUESTS.labels(method, path, str(status)).inc()
        metrics.HTTP_LATENCY.labels(method, path).observe(time.perf_counter() - started)
        return [body] if method == "GET" else []


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
