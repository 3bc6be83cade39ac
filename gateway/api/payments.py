"""Operator API of the payments service: unmatched payments (and assigning one to an order), payment accounts
with balances and poll health, payouts by status (and settling one in doubt), an order's payments and payouts.
Every action is audited by the payments service (payments.audit_log)."""
from flask import Blueprint, jsonify
from marshmallow import Schema, fields, validate

from gateway import rpc
from gateway.api import load_body, load_query
from gateway.schemas import StrictSchema
from gateway.security.caller import actor, require
from gateway.security.staff import ACT, ADMIN, READ
from gateway.security.stepup import require_step_up

bp = Blueprint("payments_api", __name__, url_prefix="/api/v1/admin")

MAX_ID = 2**63 - 1
PAYOUT_STATUSES = ("sending", "sent", "failed")
NO_NUL = validate.Regexp(r"^[^\x00]*$", error="must not contain NUL characters")  # PostgreSQL text cannot hold them


def payments():
    return rpc.service("payments")


# -- schemas -----------------------------------------------------------------------------------------------------
class PageQuerySchema(StrictSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = fields.String(validate=validate.Regexp(r"^[0-9]{1,18}$"))


class PayoutsQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(PAYOUT_STATUSES))
    order_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))


class AssignSchema(StrictSchema):
    order_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_ID))
    note = fields.String(allow_none=True, validate=[validate.Length(max=2000), NO_NUL])


class ResolvePayoutSchema(StrictSchema):
    outcome = fields.String(required=True, validate=validate.OneOf(["sent", "failed"]),
                            metadata={"description": "what the admin found at the payment system"})
    note = fields.String(required=True, validate=[validate.Length(min=1, max=2000), NO_NUL])


class PaymentSchema(Schema):
    id = fields.Integer(required=True)
    system = fields.String()
    account = fields.String()
    external_id = fields.String(metadata={"description": "the payment system's id of the transfer"})
    amount = fields.String(required=True)
    currency = fields.String(required=True)
    reference = fields.String()
    match_reference = fields.String(allow_none=True)
    counterparty = fields.String(allow_none=True)
    occurred_at = fields.String(metadata={"description": "the payment system's time of the payment"})
    detected_at = fields.String()
    status = fields.String(validate=validate.OneOf(["matched", "unmatched", "manual"]))
    order_id = fields.Integer(allow_none=True)
    candidate_order_id = fields.Integer(allow_none=True)
    flag = fields.String(allow_none=True, validate=validate.OneOf(["partial", "over", "late"]))
    reason_code = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    assigned_by = fields.String(allow_none=True)
    updated_at = fields.String()


class PaymentListSchema(Schema):
    items = fields.List(fields.Nested(PaymentSchema), required=True)
    next_cursor = fields.String(allow_none=True)


class PayoutSchema(Schema):
    id = fields.Integer(required=True)
    order_id = fields.Integer(required=True)
    attempt = fields.Integer()
    idempotency_key = fields.String()
    system = fields.String()
    from_account = fields.String()
    to_account = fields.String()
    amount = fields.String(required=True)
    currency = fields.String(required=True)
    reference = fields.String()
    received = fields.String(allow_none=True)
    status = fields.String(validate=validate.OneOf(PAYOUT_STATUSES))
    provider_id = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    sends = fields.Integer(metadata={"description": "provider calls made with this key"})
    checks = fields.Integer(metadata={"description": "lookups by key"})
    created_at = fields.String()
    attempted_at = fields.String()
    sent_at = fields.String(allow_none=True)
    failed_at = fields.String(allow_none=True)
    resolved_by = fields.String(allow_none=True)
    late_success = fields.Boolean(metadata={"description": "the payment system paid it after it was resolved "
                                                           "failed by hand: the money went out"})
    late_success_at = fields.String(allow_none=True)


class WithdrawalPayoutSchema(PayoutSchema):
    """A partner withdrawal's payout: the same transfer fields, tied to the withdrawal instead of an order."""
    order_id = fields.Integer(allow_none=True)
    withdrawal_id = fields.Integer(required=True)
    partner_id = fields.Integer(allow_none=True)


class PayoutListSchema(Schema):
    items = fields.List(fields.Nested(PayoutSchema), required=True)
    next_cursor = fields.String(allow_none=True)


class PaymentAccountSchema(Schema):
    system = fields.String()
    account = fields.String()
    currency = fields.String()
    payout = fields.Boolean(metadata={"description": "payouts in this currency are sent from here"})
    balance = fields.String(allow_none=True)
    balance_at = fields.String(allow_none=True)
    cursor = fields.String(allow_none=True)
    polled_at = fields.String(allow_none=True)
    polled_ok_at = fields.String(allow_none=True)
    poll_age_seconds = fields.Float(allow_none=True, metadata={"description": "since the last successful poll"})
    poll_error = fields.String(allow_none=True)
    ingested = fields.Integer()


class OrderPaymentsSchema(Schema):
    order_id = fields.Integer()
    received = fields.String()
    payments = fields.List(fields.Nested(PaymentSchema))
    payouts = fields.List(fields.Nested(PayoutSchema))


# -- routes ------------------------------------------------------------------------------------------------------
@bp.get("/payments/unmatched")
@require(READ)
def list_unmatched():
    q = load_query(PageQuerySchema)
    return jsonify(payments().list_unmatched(q["limit"], q.get("cursor")))


@bp.post("/payments/<int:payment_id>/assign")
@require(ACT)
def assign(payment_id):
    data = load_body(AssignSchema)
    return jsonify(payments().assign_payment(min(payment_id, MAX_ID), data["order_id"], actor(), data.get("note")))


@bp.get("/payments/accounts")
@require(READ)
def list_accounts():
    return jsonify(payments().list_accounts())


@bp.get("/payouts")
@require(READ)
def list_payouts():
    q = load_query(PayoutsQuerySchema)
    return jsonify(payments().list_payouts(q.get("status"), q["limit"], q.get("cursor"), q.get("order_id")))


@bp.post("/payouts/<int:payout_id>/resolve")
@require(ADMIN)
@require_step_up
def resolve_payout(payout_id):
    data = load_body(ResolvePayoutSchema)
    return jsonify(payments().resolve_payout(min(payout_id, MAX_ID), data["outcome"], data["note"], actor()))


@bp.post("/withdrawal-payouts/<int:payout_id>/resolve")
@require(ADMIN)
@require_step_up
def resolve_withdrawal_payout(payout_id):
    """The same rules as an order's payout: the payment system is asked by key first, refused while a call may be
    in flight, claimed by compare-and-set (docs/payments.md, "Resolving a payout by hand")."""
    data = load_body(ResolvePayoutSchema)
    return jsonify(payments().resolve_withdrawal_payout(min(payout_id, MAX_ID), data["outcome"], data["note"],
                                                        actor()))


@bp.get("/orders/<int:order_id>/payments")
@require(READ)
def order_payments(order_id):
    return jsonify(payments().order_payments(min(order_id, MAX_ID)))


def document(spec, op):
    """Adds this module's schemas and paths to the OpenAPI document (called by gateway/openapi.py)."""
    for name, schema in (("Payment", PaymentSchema), ("PaymentList", PaymentListSchema), ("Payout", PayoutSchema),
                         ("PayoutList", PayoutListSchema), ("PaymentAccount", PaymentAccountSchema),
                         ("OrderPayments", OrderPaymentsSchema), ("Assign", AssignSchema),
                         ("ResolvePayout", ResolvePayoutSchema), ("WithdrawalPayout", WithdrawalPayoutSchema)):
        spec.components.schema(name, schema=schema)
    page = [{"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
            {"name": "cursor", "in": "query", "required": False,
             "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}]

    def path_id(name):
        return {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
    spec.path("/api/v1/admin/payments/unmatched", operations={"get": op(
        "Incoming payments no order could take, newest first (they wait for an operator)",
        ok=("200", "PaymentList"), errors=("422",), secured=True, params=page, tag="payments")})
    spec.path("/api/v1/admin/payments/{payment_id}/assign", operations={"post": op(
        "Credit an unmatched payment to an order (audited); the order is then paid as if matched",
        "Assign", ("200", "Payment"), ("400", "404", "409", "422"), secured=True, params=[path_id("payment_id")],
        tag="payments")})
    spec.path("/api/v1/admin/payments/accounts", operations={"get": {
        "summary": "The exchanger's payment accounts: balances, poll cursor, age of the last successful poll",
        "tags": ["payments"], "security": [{"bearer": []}],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
            "type": "array", "items": {"$ref": "#/components/schemas/PaymentAccount"}}}}},
            "401": {"$ref": "#/components/responses/Error"}, "403": {"$ref": "#/components/responses/Error"},
            "503": {"$ref": "#/components/responses/Error"}}}})
    spec.path("/api/v1/admin/payouts", operations={"get": op(
        "Payouts, newest first, by status (sending = in flight or in doubt)", ok=("200", "PayoutList"),
        errors=("422",), secured=True, tag="payments", params=page + [
            {"name": "status", "in": "query", "required": False,
             "schema": {"type": "string", "enum": list(PAYOUT_STATUSES)}},
            {"name": "order_id", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}}])})
    spec.path("/api/v1/admin/payouts/{payout_id}/resolve", operations={"post": op(
        "Settle a payout in doubt by hand after checking the payment system (admin; audited). "
        "`failed` is refused while the payment system has the payout", "ResolvePayout", ("200", "Payout"),
        ("400", "404", "409", "422"), secured=True, params=[path_id("payout_id")], tag="payments")})
    spec.path("/api/v1/admin/withdrawal-payouts/{payout_id}/resolve", operations={"post": op(
        "Settle a partner withdrawal's payout in doubt by hand, by the same rules as an order's (admin; audited)",
        "ResolvePayout", ("200", "WithdrawalPayout"), ("400", "404", "409", "422"), secured=True,
        params=[path_id("payout_id")], tag="payments")})
    spec.path("/api/v1/admin/orders/{order_id}/payments", operations={"get": op(
        "An order's incoming payments and payout attempts", ok=("200", "OrderPayments"), errors=(),
        secured=True, params=[path_id("order_id")], tag="payments")})
