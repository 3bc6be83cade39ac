"""The operator page of stuck work (docs/architecture.md, "Stuck work"): what payments and orders found stuck, with
its age and detail, and a button per repair the item allows. It reads and acts through the JSON API in process
(gateway/pages/internal.py), so roles, checks and audit are the API's own; texts in English and Russian
(gateway/pages/i18n.py, `?lang=ru`)."""
from flask import Blueprint, flash, redirect, render_template, request, url_for

from gateway.pages import internal, staff_page
from gateway.pages.i18n import current_language, translator
from gateway.security.staff import ACT, READ


bp = Blueprint("stuck_admin", __name__, url_prefix="/admin")


def age_text(seconds):
    seconds = int(seconds or 0)
    if seconds >= 86400:
        return "%dd %dh" % (seconds // 86400, seconds % 86400 // 3600)
    if seconds >= 3600:
        return "%dh %02dm" % (seconds // 3600, seconds % 3600 // 60)
    return "%dm %02ds" % (seconds // 60, seconds % 60)


@bp.get("/stuck")
@staff_page(READ)
def stuck():
    return render_template("admin/stuck.html", result=internal.call("GET", "/api/v1/admin/stuck"),
                           st=translator(current_language()), age_text=age_text)


@bp.post("/stuck/repair")
@staff_page(ACT)
def repair():
    st = translator(current_language())
    item_id = request.form.get("id", "")
    body = {"kind": request.form.get("kind", ""), "action": request.form.get("action", ""),
            "id": int(item_id) if item_id.isdigit() else item_id}
    result = internal.call("POST", "/api/v1/admin/stuck/repair", body=body)
    what = "%s #%s: %s" % (body["kind"], item_id, st("stuck_action_" + body["action"]))
    if result.ok:
        outcome = (result.data or {}).get("outcome")
        flash("%s — %s%s" % (what, st("stuck_done"), " (%s)" % outcome if outcome else ""), "ok")
    else:
        flash("%s — %s: %s" % (what, st("stuck_refused"), result.message), "error")
    return redirect(url_for("stuck_admin.stuck"), 303)
