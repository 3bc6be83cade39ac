"""Wire forms of the reporting service: the statistics query it accepts over RPC, the CSV export's query and HTTP
answers, and the read model's summary. The query schemas themselves are shared with the gateway
(libs/contracts/reporting.py)."""
import json

from marshmallow import ValidationError
from werkzeug.wrappers import Response

from libs import errors
from libs.contracts.reporting import ExportQuerySchema, StatsQuerySchema, query_args
from services.reporting import domain

# Built once: a marshmallow schema instance is reusable and costly to build per call.
STATS_QUERY = StatsQuerySchema()
EXPORT_QUERY = ExportQuerySchema()


def load_stats_query(date_from=None, date_to=None, group="day"):
    """The `stats` RPC's arguments -> (start, end, group); ValidationFailed names the bad ones."""
    raw = {k: v for k, v in (("from", date_from), ("to", date_to), ("group", group)) if v is not None}
    try:
        return domain.stats_window(STATS_QUERY.load(raw))
    except ValidationError as exc:
        raise errors.ValidationFailed("invalid input", exc.messages)


def load_export_query(args):
    """The query string of GET /orders.csv (a werkzeug MultiDict) -> loaded filters; marshmallow's
    ValidationError when they are not valid."""
    return EXPORT_QUERY.load(query_args(args))


def summary_to_wire(newest_event_at, lag_seconds):
    return {"newest_event_at": newest_event_at.isoformat() if newest_event_at else None,
            "lag_seconds": round(lag_seconds, 3)}


def error_response(status, code, message, fields=None):
    """The JSON error body the gateway relays (the same shape as its own errors)."""
    body = {"error": code, "message": message}
    if fields:
        body["fields"] = fields
    return Response(json.dumps(body), status=status, mimetype="application/json")


def csv_response(stream, encoding, filename):
    """The streamed CSV download: the WSGI server closes `stream` when the response ends or the client leaves."""
    headers = {
        "Content-Disposition": 'attachment; filename="%s"' % filename,
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(stream, status=200, headers=headers, direct_passthrough=True,
                    content_type="text/csv; charset=%s" % encoding)
