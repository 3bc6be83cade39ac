"""Changes that move money, or who may move it (docs/security.md, "Step-up and alerts"): the audited actions that
also raise `security_change`, and its payload. The service that makes the change writes the event through its
outbox in the transaction of the change and its audit row (libs/audit.py write_audit with alert_source), so the
alert commits with the change or not at all; the notifier turns each into a letter to every admin (and an SMS
where SMS is on), deduplicated on event_id. No setting switches these letters off.

Pure module (no I/O)."""
import datetime

from marshmallow import EXCLUDE, Schema, fields

# action (as audited by its service) -> what an admin reads in the subject
ALERTED_ACTIONS = {
    # orders: the catalogue (where customers pay, the rates and fees)
    "direction_create": "a direction was created",
    "direction_update": "a direction's rate, fee or limits changed",
    "currency_create": "a currency was created",
    "currency_update": "a currency's payment account or reserve changed",
    # orders: the partner program
    "partner_update": "a partner's commission changed",
    "commission_update": "the partner commission changed",
    "direction_commission_update": "a direction's partner commission changed",
    "partner_withdrawal_approve": "a partner withdrawal was approved",
    # payments: payouts settled by hand
    "resolve_payout": "a payout was resolved by hand",
    "resolve_withdrawal_payout": "a withdrawal payout was resolved by hand",
    # rates: what decides a direction's rate (docs/rates.md); a formula's value is the rate customers get
    "manual_value_set": "a manual rate source value changed",
    "formula_save": "a direction's rate formula or its guards changed",
    "formula_delete": "a direction's rate formula was removed",
    "rate_accept": "a rate the guards froze on was accepted",
    # gateway: staff (queued by the gateway itself, gateway/security/alerts.py)
    "staff_create": "a staff member was created",
    "staff_update": "a staff member's role, password or access changed",
    "staff_reset_totp": "a staff member's two-factor sign-in was reset",
}


def change_data(actor, action, detail, at=None):
    """The payload of `security_change`: who (name, role, address), what, when and the audited detail."""
    actor = actor or {}
    return {"action": action, "what": ALERTED_ACTIONS.get(action, action),
            "actor": actor.get("name") or actor.get("kind") or "system", "actor_role": actor.get("role"),
            "actor_ip": actor.get("ip"),
            "at": (at or datetime.datetime.now(datetime.timezone.utc)).isoformat(), "detail": detail or {}}


def change_text(data):
    """(subject, body) of the alert letter for one change."""
    subject = "Security: %s (by %s)" % (data["what"], data["actor"])
    lines = ["%s." % data["what"][:1].upper() + data["what"][1:] if data["what"] else data["action"], "",
             "By: %s (%s) from %s" % (data["actor"], data.get("actor_role") or "-", data.get("actor_ip") or "-"),
             "At: %s UTC" % str(data["at"])[:19].replace("T", " "),
             "Action: %s" % data["action"], ""]
    for key, value in sorted((data.get("detail") or {}).items()):
        lines.append("%s: %s" % (key, _show(value)))
    lines += ["", "If you did not expect this change, sign in, undo it, disable the staff member and end their "
                  "sessions on the staff page (docs/security.md)."]
    return subject[:200], "\n".join(lines)


def _show(value):
    if isinstance(value, dict):
        return ", ".join("%s=%s" % (k, _show(v)) for k, v in sorted(value.items())) or "(none)"
    if isinstance(value, (list, tuple)):
        return ", ".join(_show(v) for v in value) or "(none)"
    return "(none)" if value is None or value == "" else str(value)


class SecurityChangeSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    action = fields.String(required=True)
    what = fields.String(required=True)
    actor = fields.String(required=True)
    actor_role = fields.String(allow_none=True)
    actor_ip = fields.String(allow_none=True)
    at = fields.String(required=True)
    detail = fields.Dict(load_default=dict)
