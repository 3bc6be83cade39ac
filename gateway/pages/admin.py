"""Operator pages: dashboard, the request list (the CSV export's filters), the request page with its dialogs,
the letters and SMS log. Each reads and acts through the JSON API in process (gateway/pages/internal.py)."""
import datetime
from decimal import Decimal
from urllib.parse import urlencode

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for

from gateway.pages import internal, safe_next, staff_page
from gateway.pages.charts import bar_chart
from gateway.pages.i18n import current_language, translator
from gateway.security.staff import ACT, READ
from libs import money
from libs.contracts.orders import EXCHANGE_TYPES, STATUSES

bp = Blueprint("admin", __name__, url_prefix="/admin")

# The CSV export's filters (libs/contracts/reporting.py ExportQuerySchema); the list takes the same ones.
FILTERS = ("q", "status", "exchange_type", "direction_id", "currency_in", "currency_out", "created_from", "created_to",
           "updated_from", "updated_to", "email", "partner_code", "amount_in_min", "amount_in_max",
           "amount_out_min", "amount_out_max")
DATE_FILTERS = {"created_from": False, "created_to": True, "updated_from": False, "updated_to": True}
# What operators read instead of the internal keys.
STATUS_LABELS = {"new": "New, awaiting payment", "payment_claimed": "Customer says paid", "processing": "Processing",
                 "paid": "Paid, awaiting payout", "payout": "Payout in progress", "payout_error": "Payout failed",
                 "completed": "Completed", "canceled": "Canceled", "expired": "Expired unpaid", "deleted": "Deleted"}
TYPE_LABELS = {"auto": "Automatic", "semi_auto": "Semi-automatic", "manual": "Manual"}
FLAG_LABELS = {"partial": "underpaid", "over": "overpaid", "late": "paid late"}
BULK_ACTIONS = ("cancel", "delete")

ACTIONS = {  # page action -> (API method, API path suffix, what the dialog asks for)
    "process": ("POST", "/process", "notice"),
    "payout": ("POST", "/payout", None),
    "finalize": ("POST", "/finalize", "notice?"),
    "cancel": ("POST", "/cancel", "reason"),
    "delete": ("DELETE", "", None),
}


def _filters_from(args):
    """The filters in the query string, cleaned: statuses as a list (several checkboxes) and empty ones dropped."""
    out = {}
    for key in FILTERS:
        values = [v.strip() for v in args.getlist(key) if v.strip()]
        if not values:
            continue
        out[key] = values if key == "status" else values[0][:254]
    return out


def _date_bound(text, upper):
    """A plain date from the form as the API's date-time bound: an upper bound covers the whole day."""
    if "T" in text:
        return text if ("+" in text or text.endswith("Z")) else text + "+00:00"
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        return text  # the API answers 422 with the field
    moment = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.timezone.utc)
    return (moment + datetime.timedelta(days=1) if upper else moment).isoformat()


def _list_query(filters):
    query = {}
    for key, value in filters.items():
        if key == "status":
            query[key] = ",".join(value)
        elif key in DATE_FILTERS:
            query[key] = _date_bound(value, DATE_FILTERS[key])
        else:
            query[key] = value
    return query


def _export_query(filters):
    # the search box is the list's own (the export has the filters; a search result is exported as a selection)
    return {k: (",".join(v) if k == "status" else v) for k, v in filters.items() if k != "q"}


@bp.get("/")
@staff_page(READ)
def dashboard():
    counts = internal.call("GET", "/api/v1/admin/stats/status-counts")
    window = {k: request.args[k] for k in ("from", "to") if request.args.get(k, "").strip()}
    stats = internal.call("GET", "/api/v1/admin/reports/stats", query=dict(window, group="day"))
    per_direction = internal.call("GET", "/api/v1/admin/reports/stats", query=dict(window, group="direction"))
    charts = None
    if stats.ok:
        groups = stats.data.get("groups") or []
        days = [(g["day"][5:10], g["requests"]) for g in groups]
        turnover = {}
        for g in groups:
            for item in g.get("turnover") or []:
                per_day = turnover.setdefault(item["currency_out"], {})
                per_day[g["day"][5:10]] = per_day.get(g["day"][5:10], Decimal(0)) + Decimal(item["amount_out"])
        charts = {"requests": bar_chart(days, "Requests created per day (number of requests)", "chart-requests"),
                  "turnover": [(cur, bar_chart([(d, per_day.get(d, 0)) for d, _ in days],
                                               "Turnover paid out per day, in %s" % cur, "chart-turnover-%s" % cur))
                               for cur, per_day in sorted(turnover.items())],
                  "totals": stats.data.get("totals") or {}, "from": stats.data.get("from"),
                  "to": stats.data.get("to")}
    return render_template("admin/dashboard.html", counts=counts.data if counts.ok else None,
                           counts_error=None if counts.ok else counts.message, charts=charts,
                           stats_error=None if stats.ok else (stats.fields or stats.message), statuses=STATUSES,
                           labels=_labels(), window=window, directions=_direction_rows(per_direction))


def _direction_rows(result):
    """Turnover and margin per direction over the window: [{name, requests, never_paid_share, turnover_in,
    turnover_out, margin}], the sums per currency as text."""
    if not result.ok:
        return None
    rows = []
    for group in result.data.get("groups") or []:
        sums = {"in": {}, "out": {}, "margin": {}}
        for item in group.get("turnover") or []:
            for key, amount, cur in (("in", "amount_in", "currency_in"), ("out", "amount_out", "currency_out"),
                                     ("margin", "margin", "currency_out")):
                sums[key][item[cur]] = sums[key].get(item[cur], Decimal(0)) + Decimal(item[amount])
        text = {k: ", ".join("%s %s" % (money.to_str(v), c) for c, v in sorted(m.items())) or "—"
                for k, m in sums.items()}
        rows.append({"id": group.get("direction_id"),
                     "name": "%s → %s" % (group.get("currency_in", "?"), group.get("currency_out", "?")),
                     "requests": group.get("requests", 0), "never_paid_share": group.get("never_paid_share"),
                     "turnover_in": text["in"], "turnover_out": text["out"], "margin": text["margin"]})
    return rows


@bp.get("/orders")
@staff_page(READ)
def orders():
    filters = _filters_from(request.args)
    query = _list_query(filters)
    if request.args.get("cursor", "").isdigit():
        query["cursor"] = request.args["cursor"]
    result = internal.call("GET", "/api/v1/admin/orders", query=query)
    directions = internal.call("GET", "/api/v1/admin/directions")
    next_url = None
    if result.ok and result.data.get("next_cursor"):
        next_url = url_for("admin.orders") + "?" + urlencode(
            [(k, v) for k, vs in filters.items() for v in (vs if isinstance(vs, list) else [vs])] +
            [("cursor", result.data["next_cursor"])])
    export_url = url_for("admin.export") + ("?" + urlencode(_export_query(filters)) if filters else "")
    direction_names = {d["id"]: "%s → %s" % (d["currency_in"], d["currency_out"])
                       for d in (directions.data if directions.ok else [])}
    return render_template("admin/orders.html", filters=filters, result=result, statuses=STATUSES,
                           exchange_types=EXCHANGE_TYPES, directions=directions.data if directions.ok else [],
                           next_url=next_url, export_url=export_url, field_errors=result.fields,
                           return_to=request.full_path, labels=_labels(), direction_names=direction_names,
                           rows_url=url_for("admin.order_rows") + "?" + urlencode(
                               [(k, v) for k, vs in filters.items() for v in (vs if isinstance(vs, list) else [vs])]),
                           live=not request.args.get("cursor"), now=_utc_now())


def _labels():
    return {"status": STATUS_LABELS, "type": TYPE_LABELS, "flag": FLAG_LABELS}


def _utc_now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@bp.get("/orders/rows")
@staff_page(READ)
def order_rows():
    """The list's live updates: the rows changed since `since` under the list's filters, drawn as the list draws
    them. One indexed query on updated_at per poll (the orders list API with updated_from)."""
    filters = _filters_from(request.args)
    query = _list_query(filters)
    since = request.args.get("since", "")
    try:
        moment = datetime.datetime.fromisoformat(since)
    except ValueError:
        return {"error": "since: a date-time is required"}, 422
    # a second of overlap so a change in the same second as the last poll is not missed (rows are replaced)
    query["updated_from"] = (moment - datetime.timedelta(seconds=1)).isoformat()
    query["limit"] = 100
    now = _utc_now()
    result = internal.call("GET", "/api/v1/admin/orders", query=query)
    if not result.ok:
        return {"error": result.message}, result.status if result.status >= 400 else 503
    directions = internal.call("GET", "/api/v1/admin/directions")
    direction_names = {d["id"]: "%s → %s" % (d["currency_in"], d["currency_out"])
                       for d in (directions.data if directions.ok else [])}
    template = current_app.jinja_env.get_template("admin/_order_row.html")
    module = template.make_module({"me": g.staff, "labels": _labels(), "direction_names": direction_names,
                                   "url_for": url_for, "csrf_token": lambda: ""})
    rows = [{"id": o["id"], "status": o["status"], "html": str(module.order_row(o))}
            for o in result.data.get("items") or []]
    return {"rows": rows, "now": now}


@bp.post("/orders/bulk")
@staff_page(ACT)
def bulk():
    """One action on the selected requests: cancel (one reason for all) or delete. Each goes through the API as
    a single action would (state machine, audit); what was refused is listed with the server's reason."""
    action = request.form.get("action", "")
    ids = [int(i) for i in request.form.getlist("ids") if i.isdigit()][:200]
    back = safe_next(request.form.get("return_to"), url_for("admin.orders"))
    if action not in BULK_ACTIONS or not ids:
        flash("Choose requests and an action.", "error")
        return redirect(back, 303)
    reason = (request.form.get("reason") or "").strip()
    if action == "cancel" and not reason:
        flash("Cancelling needs a reason for the customers.", "error")
        return redirect(back, 303)
    method, suffix, _ = ACTIONS[action]
    done, refused = [], []
    for order_id in ids:
        result = internal.call(method, "/api/v1/admin/orders/%d%s" % (order_id, suffix),
                               body={"reason": reason} if action == "cancel" else None)
        if result.ok:
            done.append(order_id)
        else:
            refused.append("%d (%s)" % (order_id, action_outcome(order_id, action, result)[1].split(" — ", 1)[-1]
                                        .rstrip(".")))
    g.action_outcome = "ok %d, refused %d" % (len(done), len(refused))
    if done:
        flash("%s: %s." % ({"cancel": "Canceled", "delete": "Deleted"}[action], ", ".join(map(str, done))), "ok")
    if refused:
        flash("Refused: %s." % "; ".join(refused), "error")
    return redirect(back, 303)


@bp.get("/orders/export")
@staff_page(READ)
def export():
    """The CSV with the list's filters: served by the reporting endpoint, which takes the staff session for GET."""
    path = "/api/v1/admin/reports/orders.csv"
    if not internal.route_exists(path):
        return render_template("admin/error.html", code=503,
                               message="CSV export is not available: the reporting service is not installed."), 503
    query = _export_query(_filters_from(request.args))
    if request.args.get("encoding") in ("utf-8", "windows-1251"):
        query["encoding"] = request.args["encoding"]
    return redirect(path + ("?" + urlencode(query) if query else ""), 303)


@bp.get("/orders/<int:order_id>")
@staff_page(READ)
def order(order_id):
    result = internal.call("GET", "/api/v1/admin/orders/%d" % order_id)
    if result.status == 404:
        return render_template("admin/error.html", code=404, message="No such request."), 404
    if not result.ok:
        return render_template("admin/error.html", code=result.status, message=result.message), result.status
    payments = internal.call("GET", "/api/v1/admin/orders/%d/payments" % order_id)
    letters = internal.call("GET", "/api/v1/admin/notifications", query={"order_id": order_id, "limit": 100})
    return render_template("admin/order.html", order=result.data, payments=payments, letters=letters,
                           return_to=request.full_path, st=translator(current_language()),
                           noted=noted_payments(result.data, payments))


def noted_payments(order, payments):
    """What arrived for a manual request (the payments service notes it for the operator; orders does not move):
    the sum per currency, or None when nothing did."""
    if not payments.ok:
        return None
    total = {}
    for p in payments.data.get("payments") or []:
        if p.get("status") == "manual" and p.get("order_id") == order["id"]:
            total[p["currency"]] = total.get(p["currency"], Decimal(0)) + Decimal(p["amount"])
    return ", ".join("%s %s" % (money.to_str(v), k) for k, v in sorted(total.items())) or None


@bp.post("/orders/<int:order_id>/<action>")
@staff_page(ACT)
def act(order_id, action):
    if action not in ACTIONS:
        return render_template("admin/error.html", code=404, message="No such action."), 404
    method, suffix, asks = ACTIONS[action]
    text = (request.form.get("text") or "").strip()
    body = None
    if asks == "notice":
        body = {"notice": text}
    elif asks == "notice?":
        body = {"notice": text or None}
    elif asks == "reason":
        body = {"reason": text}
    elif method == "POST":
        body = {}
    result = internal.call(method, "/api/v1/admin/orders/%d%s" % (order_id, suffix), body=body)
    g.action_outcome = "ok" if result.ok else "refused %d" % result.status  # the page answers 303 either way
    category, text = action_outcome(order_id, action, result)
    flash(text, category)
    return redirect(safe_next(request.form.get("return_to"), url_for("admin.order", order_id=order_id)), 303)


DONE = {"process": "processed: the customer is told the payout is on its way",
        "finalize": "completed", "cancel": "canceled", "delete": "deleted"}


def action_outcome(order_id, action, result):
    """(flash category, text) that say what really happened: a refusal with the server's reason, in red; a payout
    only handed over (the payment system answers later, and may refuse) as pending, never as done."""
    if not result.ok:
        if not result.available:
            reason = "the service is not answering, nothing was changed"
        elif result.fields:
            reason = "; ".join("%s: %s" % (k.replace("_", " "), " ".join(map(str, v)) if isinstance(v, list) else v)
                               for k, v in result.fields.items())
        else:
            reason = result.message
        return "error", "Request %d: %s refused — %s." % (order_id, action, reason)
    status = (result.data or {}).get("status") if isinstance(result.data, dict) else None
    if action == "payout":
        return "info", ("Request %d: payout handed to the payment system. It is not paid yet: the answer shows on "
                        "the request page." % order_id)
    return "ok", "Request %d: %s%s." % (order_id, DONE.get(action, action),
                                        " (now %s)" % status.replace("_", " ") if status else "")


@bp.get("/notifications")
@staff_page(READ)
def notifications():
    query = {k: v for k, v in request.args.items() if k in ("order_id", "kind", "channel", "status", "recipient",
                                                            "cursor") and v.strip()}
    result = internal.call("GET", "/api/v1/admin/notifications", query=query)
    next_url = None
    if result.ok and result.data.get("next_cursor"):
        next_url = url_for("admin.notifications", **dict(query, cursor=result.data["next_cursor"]))
    return render_template("admin/notifications.html", result=result, query=query, next_url=next_url)


@bp.post("/notifications/<int:notification_id>/resend")
@staff_page(ACT)
def resend(notification_id):
    result = internal.call("POST", "/api/v1/admin/notifications/%d/resend" % notification_id, body={})
    flash("Letter %d: %s" % (notification_id, "queued again" if result.ok else result.message),
          "ok" if result.ok else "error")
    return redirect(safe_next(request.form.get("return_to"), url_for("admin.notifications")), 303)
