"""Operator pages of the partner program (docs/partners.md): partners and their commission rules, the global and
per-direction rules, each partner's ledger, and the withdrawal requests with approve / reject. They act through the
JSON API in process (gateway/pages/internal.py), so the roles, checks and audit are the API's own."""
from flask import Blueprint, flash, redirect, render_template, request, url_for

from gateway.pages import internal, staff_page
from gateway.pages.manage import _report
from gateway.security.staff import ACT, ADMIN, READ
from gateway.security.stepup import page_step_up

bp = Blueprint("partners_admin", __name__, url_prefix="/admin")


@bp.get("/partners")
@staff_page(READ)
def partners():
    query = {k: v for k, v in request.args.items() if k in ("code", "email", "cursor") and v.strip()}
    return render_template("admin/partners.html", result=internal.call("GET", "/api/v1/admin/partners", query=query),
                           commission=internal.call("GET", "/api/v1/admin/commission"),
                           directions=internal.call("GET", "/api/v1/admin/directions"), query=query)


@bp.get("/partners/<int:partner_id>")
@staff_page(READ)
def partner(partner_id):
    result = internal.call("GET", "/api/v1/admin/partners/%d" % partner_id)
    if result.status == 404:
        return render_template("admin/error.html", code=404, message="No such partner."), 404
    return render_template("admin/partner.html", result=result)


@bp.post("/partners/<int:partner_id>")
@staff_page(ADMIN)
@page_step_up()
def partner_update(partner_id):
    percent = request.form.get("percent", "").strip()
    body = {"active": request.form.get("active") == "on"}
    if percent:
        body.update(percent=percent, base=request.form.get("base") or "margin")
    else:
        body.update(percent=None, base=None)  # back to the global (or direction) rule
    _report(internal.call("PUT", "/api/v1/admin/partners/%d" % partner_id, body=body), "Partner %d" % partner_id)
    return redirect(url_for("partners_admin.partner", partner_id=partner_id), 303)


@bp.post("/commission")
@staff_page(ADMIN)
@page_step_up()
def commission_update():
    body = {k: request.form[k].strip() for k in ("percent", "base", "min_withdrawal")
            if request.form.get(k, "").strip()}
    if request.form.get("version", "").isdigit():
        body["version"] = int(request.form["version"])  # compare-and-set: another admin's change is not overwritten
    _report(internal.call("PUT", "/api/v1/admin/commission", body=body), "Commission settings")
    return redirect(url_for("partners_admin.partners"), 303)


@bp.post("/commission/directions")
@staff_page(ADMIN)
@page_step_up()
def direction_rule():
    direction_id = request.form.get("direction_id", "")
    if not direction_id.isdigit():
        flash("Choose a direction.", "error")
        return redirect(url_for("partners_admin.partners"), 303)
    percent = request.form.get("percent", "").strip()
    path = "/api/v1/admin/commission/directions/%d" % int(direction_id)
    result = internal.call("PUT", path, body={"percent": percent, "base": request.form.get("base") or "margin"}) \
        if percent else internal.call("DELETE", path)
    _report(result, "Direction %s rule" % direction_id)
    return redirect(url_for("partners_admin.partners"), 303)


@bp.get("/withdrawals")
@staff_page(READ)
def withdrawals():
    query = {k: v for k, v in request.args.items() if k in ("status", "partner_id", "cursor") and v.strip()}
    if "status" not in request.args:
        query["status"] = "requested"
    return render_template("admin/withdrawals.html", query=query,
                           result=internal.call("GET", "/api/v1/admin/withdrawals", query=query))


@bp.post("/withdrawals/<int:withdrawal_id>/<action>")
@staff_page(ACT)
@page_step_up(lambda withdrawal_id, action: action == "approve")
def withdrawal_decide(withdrawal_id, action):
    if action == "approve":
        body = {"method": request.form.get("method") or "manual",
                "reference": request.form.get("reference", "").strip() or None}
    elif action == "reject":
        body = {"reason": request.form.get("reason", "").strip()}
    else:
        return render_template("admin/error.html", code=404, message="No such action."), 404
    _report(internal.call("POST", "/api/v1/admin/withdrawals/%d/%s" % (withdrawal_id, action), body=body),
            "Withdrawal %d" % withdrawal_id)
    return redirect(request.form.get("back") if (request.form.get("back") or "").startswith("/admin/")
                    else url_for("partners_admin.withdrawals"), 303)
