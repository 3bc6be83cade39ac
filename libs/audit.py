"""The audit trail: one rule for the name an action is recorded under, one writer for the audit row.

Every schema that audits (gateway, orders, payments) has an append-only `audit_log` sharing the columns
actor, actor_role, actor_ip, action, outcome, detail; each adds its own references (orders: order_id,
from_status, to_status; payments: payment_id, payout_id, order_id), which the caller passes by name.
An actor is the dict the services pass each other: name, kind (staff, customer, system), role, ip."""
import json

from libs import outbox
from libs.contracts import events, security

COMMON_COLUMNS = ("actor", "actor_role", "actor_ip", "action", "outcome", "detail")


def actor_name(actor):
    """The staff member's (or account's, or timer's) name, else the kind of actor, else "system"."""
    actor = actor or {}
    return actor.get("name") or actor.get("kind") or "system"


def audit_statement(actor, action, outcome="ok", detail=None, table="audit_log", **columns):
    """(sql, params) of one audit row, for libs.db.execute_batch (one round trip with the change it records) or
    cur.execute. `columns` are the table's own references, e.g. order_id=..., in the order given."""
    actor = actor or {}
    names = COMMON_COLUMNS + tuple(columns)
    sql = "INSERT INTO %s (%s) VALUES (%s)" % (table, ", ".join(names), ", ".join(["%s"] * len(names)))
    params = (actor_name(actor), actor.get("role"), actor.get("ip"), action, outcome,
              json.dumps(detail or {}, default=str)) + tuple(columns.values())
    return sql, params


def write_audit(cur, actor, action, outcome="ok", detail=None, table="audit_log", alert_source=None, **columns):
    """Write one audit row in the caller's transaction. With `alert_source` (the writing service), a successful
    staff action that moves money (libs/contracts/security.py ALERTED_ACTIONS) also puts `security_change` in that
    service's outbox, in the same transaction: the alert to every admin commits with the change or not at all."""
    cur.execute(*audit_statement(actor, action, outcome, detail, table, **columns))
    # Staff actions only (an actor with a role): an automatic rate update or a timer is no takeover to report.
    if alert_source is not None and outcome == "ok" and action in security.ALERTED_ACTIONS and \
            (actor or {}).get("role"):
        outbox.write_event(cur, alert_source, events.SECURITY_CHANGE,
                           security.change_data(actor, action, json.loads(json.dumps(detail or {}, default=str))))
