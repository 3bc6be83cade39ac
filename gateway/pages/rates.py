"""The operator pages of the rate engine (docs/rates.md): sources with their values, ages and errors (and the manual
source's form), every formula with its state, and per direction the formula editor with a preview, the rate
history charted and the formula's history. They read and act through the JSON API in process
(gateway/pages/internal.py), so roles, checks and audit are the API's own. A manual value, a formula saved or
removed and an accepted rate decide what customers get: each asks for a step-up (the prompt of
gateway/security/stepup.py re-posts the form) and alerts every admin (docs/security.md, "Step-up and alerts"). A
preview changes nothing: it has its own route, open to every role, and never asks."""
from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from gateway.pages import internal, staff_page
from gateway.pages.charts import line_chart
from gateway.pages.stuck import age_text
from gateway.security.staff import ACT, ADMIN, READ
from gateway.security.stepup import page_step_up

bp = Blueprint("rates_admin", __name__, url_prefix="/admin")

FORMULA_FIELDS = ("expression", "quote", "max_jump_percent", "max_spread_percent")
# The operations of the direction's form that change something, and who may make each (the API's roles).
CHANGES = {"save": ADMIN, "delete": ADMIN, "accept": ACT}


def _asks_step_up(direction_id):
    """A change the caller's role may make asks for a step-up; a preview never does, and a change the role may not
    make goes on to the API's 403 (roles first, no invitation to step up)."""
    return g.staff["role"] in CHANGES.get(request.form.get("op", "preview"), ())


def _problem(result):
    details = "; ".join("%s: %s" % (k, " ".join(map(str, v)) if isinstance(v, list) else v)
                        for k, v in result.fields.items())
    return details or result.message


@bp.get("/rates")
@staff_page(READ)
def rates():
    return render_template("admin/rates.html", sources=internal.call("GET", "/api/v1/admin/rates/sources"),
                           formulas=internal.call("GET", "/api/v1/admin/rates/formulas"),
                           directions=internal.call("GET", "/api/v1/admin/directions"), age_text=age_text)


@bp.post("/rates/manual")
@staff_page(ACT)
@page_step_up()
def manual_value():
    source, symbol = request.form.get("source", "").strip(), request.form.get("symbol", "").strip()
    result = internal.call("PUT", "/api/v1/admin/rates/manual/%s/%s" % (source or "-", symbol or "-"),
                           body={"value": request.form.get("value", "").strip()})
    if result.ok:
        flash("%s.%s = %s saved." % (source, symbol, result.data["value"]), "ok")
    else:
        flash("Manual value not saved: %s" % _problem(result), "error")
    return redirect(url_for("rates_admin.rates"), 303)


def _chart(history):
    points, marked = [], set()
    for item in history:
        value = item["rate_out"] if item["rate_in"] == "1" else item["rate_in"]
        if item["value"] is None and value is None:
            continue
        if item["frozen"]:
            marked.add(len(points))
        points.append((item["created_at"][11:19], item["value"] if item["value"] is not None else value))
    return line_chart(points, "rate history", "rate-chart", marked)


@bp.get("/rates/<int:direction_id>")
@staff_page(READ)
def direction(direction_id, preview=None, form=None):
    detail = internal.call("GET", "/api/v1/admin/rates/formulas/%d" % direction_id)
    directions = internal.call("GET", "/api/v1/admin/directions")
    the_direction = next((d for d in (directions.data or []) if d["id"] == direction_id), None) \
        if directions.ok else None
    formula = (detail.data or {}).get("formula") if detail.ok else None
    if form is None:
        form = {k: (formula or {}).get(k) or "" for k in FORMULA_FIELDS}
    return render_template("admin/rate_direction.html", direction_id=direction_id, direction=the_direction,
                           detail=detail, formula=formula, form=form, preview=preview,
                           chart=_chart((detail.data or {}).get("rates") or []) if detail.ok else None,
                           sources=internal.call("GET", "/api/v1/admin/rates/sources"))


def _form():
    form = {k: request.form.get(k, "").strip() for k in FORMULA_FIELDS}
    return form, {k: v for k, v in form.items() if v}


def _preview(direction_id):
    form, body = _form()
    result = internal.call("POST", "/api/v1/admin/rates/formulas/%d/preview" % direction_id, body=body)
    if not result.ok:
        flash("Preview refused: %s" % _problem(result), "error")
        return direction(direction_id, form=form)
    return direction(direction_id, preview=result.data, form=form)


@bp.post("/rates/<int:direction_id>/preview")
@staff_page(READ)
def preview(direction_id):
    return _preview(direction_id)


@bp.post("/rates/<int:direction_id>")
@staff_page(ACT)
@page_step_up(_asks_step_up)
def act(direction_id):
    op = request.form.get("op", "preview")
    form, body = _form()
    if request.form.get("expected_version", "").isdigit():
        expected = int(request.form["expected_version"])
    else:
        expected = None
    if op == "preview":
        return _preview(direction_id)
    if op == "save":
        if expected is not None:
            body["expected_version"] = expected
        result = internal.call("PUT", "/api/v1/admin/rates/formulas/%d" % direction_id, body=body)
        if not result.ok:
            flash("Formula not saved: %s" % _problem(result), "error")
            return direction(direction_id, form=form)
        flash("Formula saved (version %s)." % result.data["formula"]["version"], "ok")
    elif op == "accept":
        result = internal.call("POST", "/api/v1/admin/rates/formulas/%d/accept" % direction_id, body={})
        flash("Rate accepted." if result.ok else "Not accepted: %s" % _problem(result),
              "ok" if result.ok else "error")
    elif op == "delete":
        result = internal.call("DELETE", "/api/v1/admin/rates/formulas/%d" % direction_id)
        flash("Formula removed: set the rate by hand on the directions page." if result.ok else
              "Not removed: %s" % _problem(result), "ok" if result.ok else "error")
    return redirect(url_for("rates_admin.direction", direction_id=direction_id), 303)
