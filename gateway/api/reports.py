"""Reports for admins, operators and analysts: the CSV export and the statistics (docs/reporting.md).

The CSV is produced by the reporting service (it owns the read model) on its internal HTTP endpoint; this view
checks the staff member's role, validates the filters with the same schema the service uses, audits the export,
and relays the bytes chunk by chunk: nothing is held in memory here and no row travels through an RPC reply.
"""
import logging

import requests
from flask import Blueprint, Response, current_app, jsonify, request

from gateway import rpc
from gateway.errors import ApiError, error_response
from gateway.security.caller import actor, require
from gateway.security.staff import READ, staff_store
from libs.contracts.reporting import ExportQuerySchema, StatsQuerySchema, query_args, to_query

log = logging.getLogger(__name__)

bp = Blueprint("reports_api", __name__, url_prefix="/api/v1/admin/reports")

CHUNK = 1 << 20
STATS_TIMEOUT = 30.0


@bp.get("/orders.csv")
@require(READ)
def orders_csv():
    query = to_query(ExportQuerySchema().load(query_args(request.args)))
    who = actor()
    staff_store().audit(who["name"], "report_export", role=who["role"], ip=who["ip"], detail={"filters": query})
    headers = {}
    if current_app.config.get("REPORTING_HTTP_TOKEN"):
        headers["X-Internal-Token"] = current_app.config["REPORTING_HTTP_TOKEN"]
    try:
        # (connect, read) timeouts: the read timeout bounds the wait for each chunk, not the whole export.
        upstream = requests.get(current_app.config["REPORTING_URL"].rstrip("/") + "/orders.csv", params=query,
                                headers=headers, stream=True, timeout=(3.0, 120.0))
    except requests.RequestException as exc:
        log.warning("reporting export endpoint unreachable: %s", exc)
        raise ApiError(503, "service_unavailable", "the reporting service is not reachable")
    if upstream.status_code != 200:
        try:
            body = upstream.json()
        except ValueError:
            body = {}
        finally:
            upstream.close()
        status = upstream.status_code if upstream.status_code in (422, 429, 503) else 503
        response = error_response(status, body.get("error", "service_unavailable"),
                                  body.get("message", "export failed"), body.get("fields"))
        if upstream.headers.get("Retry-After"):
            response.headers["Retry-After"] = upstream.headers["Retry-After"]
        return response

    def relay():
        # A failure upstream mid-way raises here: the connection is dropped without the final chunk, so the
        # client sees a broken download rather than a silently short file.
        try:
            for chunk in upstream.raw.stream(CHUNK, decode_content=False):
                yield chunk
        finally:
            upstream.close()

    response = Response(relay(), status=200, content_type=upstream.headers.get("Content-Type", "text/csv"),
                        direct_passthrough=True)
    response.headers["Content-Disposition"] = upstream.headers.get(
        "Content-Disposition", 'attachment; filename="orders.csv"')
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/stats")
@require(READ)
def stats():
    params = StatsQuerySchema().load(request.args.to_dict(flat=True))
    result = rpc.client().call(
        "reporting", "stats",
        params["from_"].isoformat() if params.get("from_") else None,
        params["to"].isoformat() if params.get("to") else None,
        params.get("group", "day"), timeout=STATS_TIMEOUT)
    return jsonify(result)


def document(spec, op):
    """This module's paths in the OpenAPI document (called by gateway/openapi.py)."""
    def param(name, schema, description=None):
        p = {"name": name, "in": "query", "required": False, "schema": schema}
        if description:
            p["description"] = description
        return p
    when = {"type": "string", "description": "a date (2024-05-01) or an ISO 8601 date-time; no zone means UTC",
            "maxLength": 40}
    amount = {"type": "string", "pattern": r"^[0-9]{1,20}(\.[0-9]{1,18})?$"}
    export_params = [
        param("status", {"type": "string"}, "one status or several, comma-separated"),
        param("exchange_type", {"type": "string", "enum": ["auto", "semi_auto", "manual"]}),
        param("direction_id", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}),
        param("currency_in", {"type": "string", "pattern": "^[A-Za-z0-9]{2,16}$"}),
        param("currency_out", {"type": "string", "pattern": "^[A-Za-z0-9]{2,16}$"}),
        param("created_from", when, "inclusive"), param("created_to", when, "exclusive; a plain date: whole day"),
        param("updated_from", when, "inclusive"), param("updated_to", when, "exclusive; a plain date: whole day"),
        param("email", {"type": "string", "minLength": 1, "maxLength": 254}, "exact, case-insensitive"),
        param("partner_code", {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}),
        param("amount_in_min", amount), param("amount_in_max", amount),
        param("amount_out_min", amount), param("amount_out_max", amount),
        param("encoding", {"type": "string", "enum": ["utf-8", "windows-1251"]},
              "utf-8 with commas (default) or windows-1251 with semicolons"),
    ]
    csv_op = op("Orders as CSV, filtered; streamed from one snapshot (admin, operator, analyst)",
                errors=("422", "429"), secured=True, params=export_params, tag="reports")
    csv_op["responses"]["200"] = {"description": "CSV with a header row; formula cells prefixed with '",
                                  "content": {"text/csv": {"schema": {"type": "string"}}}}
    spec.path("/api/v1/admin/reports/orders.csv", operations={"get": csv_op})
    stats_params = [param("from", when, "inclusive; default: 30 days before `to`"),
                    param("to", when, "exclusive; a plain date: whole day; default: now"),
                    param("group", {"type": "string", "enum": ["day", "direction"]})]
    stats_op = op("Requests by status, never-paid share, completion time percentiles, turnover and margin",
                  errors=("422",), secured=True, params=stats_params, tag="reports")
    stats_op["responses"]["200"] = {"description": "OK", "content": {"application/json": {"schema": {
        "type": "object", "required": ["from", "to", "group", "totals", "groups"],
        "properties": {"from": {"type": "string"}, "to": {"type": "string"}, "group": {"type": "string"},
                       "totals": {"type": "object"}, "groups": {"type": "array", "items": {"type": "object"}}}}}}}
    spec.path("/api/v1/admin/reports/stats", operations={"get": stats_op})
