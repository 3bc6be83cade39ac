"""The stuck-work detector's contract (docs/architecture.md, "Stuck work"): the kinds of money work that should
have moved on and has not, which service finds each and the repairs an operator may run on it, the item every
`list_stuck_work()` RPC answers, and the payload of `stuck_work_found` (payments and orders publish it, the
notifier turns it into one letter to the admin address).

Pure module (no I/O), imported by payments, orders, the notifier and the gateway.
"""
from marshmallow import EXCLUDE, Schema, fields, validate

# kind -> (the service that finds and repairs it, the repair actions it allows)
KINDS = {
    # payments: its copy of an order is in `payout` and no payout row answers that request
    "payout_missing": ("payments", ("create_payout",)),
    # payments: a payment matched to an order whose copy is not paid/payout/payout_error/completed
    "payment_on_unpaid_order": ("payments", ("unmatch",)),
    # payments: a payout still `sending` well past the reconciler's reach
    "payout_in_doubt": ("payments", ("reconcile",)),
    # orders: a partner withdrawal approved for a payout and neither paid nor failed
    "withdrawal_not_paid": ("orders", ("resend_request",)),
}
SERVICES = ("payments", "orders")
ACTIONS = tuple(sorted({a for _, actions in KINDS.values() for a in actions}))


def kinds_of(service):
    return tuple(kind for kind, (owner, _) in KINDS.items() if owner == service)


def repairs(kind):
    return KINDS[kind][1]


def service_of(kind):
    return KINDS[kind][0]


def item(kind, item_id, order_id, age_seconds, detail):
    """The wire form of one stuck item (what list_stuck_work answers and stuck_work_found carries)."""
    return {"kind": kind, "service": service_of(kind), "id": int(item_id),
            "order_id": int(order_id) if order_id is not None else None,
            "age_seconds": round(float(age_seconds), 1), "detail": detail, "repair": list(repairs(kind))}


class StuckItemSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    kind = fields.String(required=True, validate=validate.OneOf(list(KINDS)))
    service = fields.String(load_default=None, allow_none=True)
    id = fields.Integer(required=True)
    order_id = fields.Integer(allow_none=True, load_default=None)
    age_seconds = fields.Float(required=True)
    detail = fields.String(required=True)
    repair = fields.List(fields.String(), load_default=list)


class StuckWorkFoundSchema(Schema):
    """`stuck_work_found`: the items a check found that were not announced before (each announced once while it
    stays stuck), and how many items of each kind are stuck now."""
    class Meta:
        unknown = EXCLUDE

    service = fields.String(required=True, validate=validate.OneOf(SERVICES))
    items = fields.List(fields.Nested(StuckItemSchema), required=True, validate=validate.Length(min=1))
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), load_default=dict)


def counts(items, kinds):
    """How many items of each of `kinds` (zero included, so a gauge goes back to 0 when work moves on)."""
    out = {kind: 0 for kind in kinds}
    for entry in items:
        out[entry["kind"]] = out.get(entry["kind"], 0) + 1
    return out
