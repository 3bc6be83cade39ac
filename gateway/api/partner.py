"""Partner program API (docs/partners.md).

The partner (an account, bearer `acc_…`): GET /api/v1/partner (code, link, balances, stats), POST /api/v1/partner
(become one), POST /api/v1/partner/withdrawals. Staff: partners and their commission rules, the global rule and the
per-direction ones, withdrawal requests and their decisions; every change audited here and in orders.audit_log.

The referral link is `<PUBLIC_URL>/?ref=CODE`: the page remembers the code for 30 days in a cookie
(gateway/pages/cabinet.py) and POST /api/v1/orders puts it on the order as `partner_code` when the body has none.
"""
import uuid

from flask import Blueprint, current_app, jsonify, request
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from gateway import rpc
from gateway.api import load_body, load_query
from gateway.api.account import current_account, require_account
from gateway.errors import ApiError
from gateway.schemas import AmountString, StrictSchema
from gateway.security.caller import actor, require
from gateway.security.staff import ACT, ADMIN, READ, staff_store
from gateway.security.stepup import require_step_up

bp = Blueprint("partner_api", __name__, url_prefix="/api/v1")

REF_COOKIE = "exchanger_ref"
REF_COOKIE_DAYS = 30
MAX_ID = 2**63 - 1
MAX_INT = 2**31 - 1
PERCENT = validate.Regexp(r"^(100(\.0{1,6})?|[0-9]{1,2}(\.[0-9]{1,6})?)$",
                          error="a percent from 0 to 100 as a decimal string, e.g. \"10\" or \"2.5\"")
BASES = ("margin", "amount")


def orders():
    return rpc.service("orders")


def referral_link(code):
    return "%s/?ref=%s" % (current_app.config["PUBLIC_URL"].rstrip("/"), code)


def referral_from_cookie():
    """The partner code a visitor brought by a referral link (the cookie), if it looks like one."""
    code = request.cookies.get(REF_COOKIE, "")
    return code if code and len(code) <= 32 and code.isalnum() else None


# -- schemas -------------------------------------------------------------------------------------------------------
class WithdrawalCreateSchema(StrictSchema):
    amount = AmountString(required=True, metadata={"example": "25.00"})
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z0-9]{2,16}$"))
    to_account = fields.String(required=True, validate=validate.Length(min=1, max=200),
                               metadata={"description": "your account at the currency's payment system"})


class RuleSchema(StrictSchema):
    percent = fields.String(required=True, validate=PERCENT)
    base = fields.String(load_default="margin", validate=validate.OneOf(BASES),
                         metadata={"description": "margin: the order's fee; amount: the amount exchanged"})


class PartnerUpdateSchema(StrictSchema):
    percent = fields.String(allow_none=True, validate=PERCENT,
                            metadata={"description": "the partner's own rule; null (with base) = the global rule"})
    base = fields.String(allow_none=True, validate=validate.OneOf(BASES))
    active = fields.Boolean(truthy={True}, falsy={False})

    @validates_schema
    def _not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("nothing to change", "_schema")
        if "base" in data and data["base"] is not None and data.get("percent") is None:
            raise ValidationError("a base needs a percent", "percent")


class CommissionUpdateSchema(StrictSchema):
    percent = fields.String(validate=PERCENT)
    base = fields.String(validate=validate.OneOf(BASES))
    min_withdrawal = AmountString(metadata={"description": "the smallest withdrawal, in any currency"})
    version = fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_INT))

    @validates_schema
    def _not_empty(self, data, **kwargs):
        if not set(data) - {"version"}:
            raise ValidationError("nothing to change", "_schema")


class PartnersQuerySchema(StrictSchema):
    code = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,32}$"))
    email = fields.String(validate=validate.Length(max=254))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Regexp(r"^[0-9]{1,18}$"))


class WithdrawalsQuerySchema(StrictSchema):
    status = fields.String(validate=validate.OneOf(["requested", "approved", "rejected", "paid", "failed"]))
    partner_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Regexp(r"^[0-9]{1,18}$"))


class ApproveSchema(StrictSchema):
    method = fields.String(required=True, validate=validate.OneOf(["manual", "payout"]),
                           metadata={"description": "manual: paid by hand (give the reference); payout: through "
                                                    "the payment system"})
    reference = fields.String(allow_none=True, validate=validate.Length(max=200))


class RejectSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class BalanceSchema(Schema):
    currency = fields.String()
    balance = fields.String()
    pending_withdrawals = fields.String()
    earned = fields.String()


class WithdrawalSchema(Schema):
    id = fields.Integer()
    partner_id = fields.Integer()
    currency = fields.String()
    amount = fields.String()
    to_account = fields.String()
    status = fields.String(validate=validate.OneOf(["requested", "approved", "rejected", "paid", "failed"]))
    method = fields.String(allow_none=True)
    reference = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    decided_by = fields.String(allow_none=True)
    decided_at = fields.String(allow_none=True)
    created_at = fields.String()
    destination_confirmed = fields.Boolean(metadata={
        "description": "false: the partner has not yet confirmed to_account by the link in the withdrawal letter; "
                       "the withdrawal waits (approving it is a 409)"})


class PartnerOverviewSchema(Schema):
    code = fields.String(required=True)
    link = fields.String(required=True)
    balances = fields.List(fields.Nested(BalanceSchema))
    stats = fields.Dict(metadata={"description": "clicks, clicks_by_day, orders_by_status, referred_orders, "
                                                 "earnings_by_day"})
    referred_orders = fields.List(fields.Dict())
    withdrawals = fields.List(fields.Nested(WithdrawalSchema))
    min_withdrawal = fields.String()


# -- the partner ---------------------------------------------------------------------------------------------------
@bp.get("/partner")
@require_account
def overview():
    data = orders().partner_overview(current_account()["id"])
    data["link"] = referral_link(data["code"])
    return jsonify(data)


@bp.post("/partner")
@require_account
def join():
    result = orders().become_partner(current_account()["id"])
    partner = result["partner"]
    return jsonify({"partner": partner, "code": partner["code"], "link": referral_link(partner["code"])}), \
        (201 if result["created"] else 200)


@bp.post("/partner/withdrawals")
@require_account
def request_withdrawal():
    data = load_body(WithdrawalCreateSchema)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 100:
        raise ApiError(422, "validation_failed", "invalid input", {"Idempotency-Key": ["1 to 100 characters"]})
    # Without a key, one of our own: a repeated RPC (nameko may run one twice) still asks once. Orders keeps a key
    # per partner and bound to the body: the same key with another body is a 409 (docs/partners.md, "Withdrawals").
    request_id = "acct%s:%s" % (current_account()["id"], key) if key else "w-" + uuid.uuid4().hex
    withdrawal = orders().request_withdrawal(current_account()["id"], data["amount"], data["currency"],
                                             data["to_account"], request_id)
    return jsonify(withdrawal), 201


# -- staff ---------------------------------------------------------------------------------------------------------
def _audit(who, action, outcome, detail):
    staff_store().audit(who["name"], action, outcome=outcome, role=who["role"], ip=who["ip"], detail=detail)


def _audited(action, detail, call):
    who = actor()
    try:
        result = call(who)
    except Exception as exc:
        _audit(who, action, "rejected", dict(detail, error=type(exc).__name__))
        raise
    _audit(who, action, "ok", detail)
    return result


@bp.get("/admin/partners")
@require(READ)
def list_partners():
    return jsonify(orders().list_partners(load_query(PartnersQuerySchema)))


@bp.get("/admin/partners/<int:partner_id>")
@require(READ)
def get_partner(partner_id):
    return jsonify(orders().get_partner(min(partner_id, MAX_ID)))


@bp.put("/admin/partners/<int:partner_id>")
@require(ADMIN)
@require_step_up
def update_partner(partner_id):
    data = load_body(PartnerUpdateSchema)
    pid = min(partner_id, MAX_ID)
    return jsonify(_audited("partner.update", {"partner_id": pid, "changes": data},
                            lambda who: orders().update_partner(pid, data, who)))


@bp.get("/admin/commission")
@require(READ)
def get_commission():
    return jsonify(orders().get_commission())


@bp.put("/admin/commission")
@require(ADMIN)
@require_step_up
def update_commission():
    data = load_body(CommissionUpdateSchema)
    version = data.pop("version", None)
    return jsonify(_audited("commission.update", {"changes": data},
                            lambda who: orders().update_commission(data, who, version)))


@bp.put("/admin/commission/directions/<int:direction_id>")
@require(ADMIN)
@require_step_up
def set_direction_rule(direction_id):
    data = load_body(RuleSchema)
    did = min(direction_id, MAX_INT)
    return jsonify(_audited("commission.direction", {"direction_id": did, "rule": data},
                            lambda who: orders().set_direction_commission(did, data, who)))


@bp.delete("/admin/commission/directions/<int:direction_id>")
@require(ADMIN)
@require_step_up
def clear_direction_rule(direction_id):
    did = min(direction_id, MAX_INT)
    return jsonify(_audited("commission.direction", {"direction_id": did, "rule": None},
                            lambda who: orders().set_direction_commission(did, None, who)))


@bp.get("/admin/withdrawals")
@require(READ)
def list_withdrawals():
    return jsonify(orders().list_withdrawals(load_query(WithdrawalsQuerySchema)))


@bp.post("/admin/withdrawals/<int:withdrawal_id>/approve")
@require(ACT)
@require_step_up
def approve(withdrawal_id):
    data = load_body(ApproveSchema)
    wid = min(withdrawal_id, MAX_ID)
    # positional arguments: the RPC client's own first parameter is called `method`
    return jsonify(_audited("withdrawal.approve", dict(data, withdrawal_id=wid), lambda who: orders().decide_withdrawal(
        wid, "approve", who, data["method"], data.get("reference"), None)))


@bp.post("/admin/withdrawals/<int:withdrawal_id>/reject")
@require(ACT)
def reject(withdrawal_id):
    data = load_body(RejectSchema)
    wid = min(withdrawal_id, MAX_ID)
    return jsonify(_audited("withdrawal.reject", dict(data, withdrawal_id=wid), lambda who: orders().decide_withdrawal(
        wid, "reject", who, None, None, data["reason"])))


# -- OpenAPI -------------------------------------------------------------------------------------------------------
def document(spec, op):
    for name, schema in (("WithdrawalCreate", WithdrawalCreateSchema), ("CommissionRule", RuleSchema),
                         ("PartnerUpdate", PartnerUpdateSchema), ("CommissionUpdate", CommissionUpdateSchema),
                         ("Approve", ApproveSchema), ("Reject", RejectSchema), ("Balance", BalanceSchema),
                         ("Withdrawal", WithdrawalSchema), ("PartnerOverview", PartnerOverviewSchema)):
        spec.components.schema(name, schema=schema)

    def acc(operation):
        operation["security"] = [{"account": []}]
        operation["responses"]["401"] = {"$ref": "#/components/responses/Error"}
        return operation

    def q(name, schema):
        return {"name": name, "in": "query", "required": False, "schema": schema}
    page = [q("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
            q("cursor", {"type": "string", "pattern": "^[0-9]{1,18}$"})]
    pid = {"name": "partner_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
    did = {"name": "direction_id", "in": "path", "required": True,
           "schema": {"type": "integer", "minimum": 1, "maximum": MAX_INT}}
    wid = {"name": "withdrawal_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
    spec.path("/api/v1/partner", operations={
        "get": acc(op("The partner cabinet: code, link, balances, clicks, referred orders, earnings by day, "
                      "withdrawals", ok=("200", "PartnerOverview"), errors=("404",), tag="partner")),
        "post": acc(op("Become a partner (201; 200 if already one)", ok=("201", None), errors=("403",),
                       tag="partner"))})
    spec.path("/api/v1/partner/withdrawals", operations={"post": acc(op(
        "Ask for a withdrawal (held from the balance until an operator decides)", "WithdrawalCreate",
        ("201", "Withdrawal"), ("400", "404", "409", "422"), params=[
            {"name": "Idempotency-Key", "in": "header", "required": False,
             "schema": {"type": "string", "maxLength": 100}}], tag="partner"))})
    spec.path("/api/v1/admin/partners", operations={"get": op(
        "Partners with their rules, clicks, referred orders and balances", ok=("200", None), errors=("422",),
        secured=True, params=[q("code", {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}),
                              q("email", {"type": "string", "maxLength": 254})] + page, tag="partners")})
    spec.path("/api/v1/admin/partners/{partner_id}", operations={
        "get": op("A partner with the ledger and withdrawals", ok=("200", None), errors=("404",), secured=True,
                  params=[pid], tag="partners"),
        "put": op("Change a partner's own commission rule or switch it off (admin, audited)", "PartnerUpdate",
                  ("200", None), ("400", "404", "422"), secured=True, params=[pid], tag="partners")})
    spec.path("/api/v1/admin/commission", operations={
        "get": op("The global commission rule, the per-direction ones, the minimum withdrawal", ok=("200", None),
                  errors=(), secured=True, tag="partners"),
        "put": op("Change the global rule or the minimum withdrawal (admin, audited)", "CommissionUpdate",
                  ("200", None), ("400", "409", "422"), secured=True, tag="partners")})
    spec.path("/api/v1/admin/commission/directions/{direction_id}", operations={
        "put": op("A direction's own commission rule (admin, audited)", "CommissionRule", ("200", None),
                  ("400", "404", "422"), secured=True, params=[did], tag="partners"),
        "delete": op("Remove a direction's own rule (admin, audited)", ok=("200", None), errors=("404",),
                     secured=True, params=[did], tag="partners")})
    spec.path("/api/v1/admin/withdrawals", operations={"get": op(
        "Withdrawal requests, newest first", ok=("200", None), errors=("422",), secured=True,
        params=[q("status", {"type": "string", "enum": ["requested", "approved", "rejected", "paid", "failed"]}),
                q("partner_id", {"type": "integer", "minimum": 1})] + page, tag="partners")})
    spec.path("/api/v1/admin/withdrawals/{withdrawal_id}/approve", operations={"post": op(
        "Approve: paid by hand (reference) or through a payout (operator, audited)", "Approve",
        ("200", "Withdrawal"), ("400", "404", "409", "422"), secured=True, params=[wid], tag="partners")})
    spec.path("/api/v1/admin/withdrawals/{withdrawal_id}/reject", operations={"post": op(
        "Reject with a reason; the amount returns to the balance (operator, audited)", "Reject",
        ("200", "Withdrawal"), ("400", "404", "409", "422"), secured=True, params=[wid], tag="partners")})
