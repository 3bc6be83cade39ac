"""marshmallow schemas at the HTTP edge: requests are loaded (unknown fields rejected), responses documented.
The OpenAPI document is generated from these same classes (gateway/openapi.py)."""
import datetime

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

from libs.contracts.fields import AmountOrZeroString, AmountString  # noqa: F401  (gateway.api.* use them too)
# The create-order body is the orders service's contract; OpenAPI names it from this module.
from libs.contracts.orders import EXCHANGE_TYPES, STATUSES, OrderCreateSchema  # noqa: F401


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


# -- requests --------------------------------------------------------------------------------------------------
class LoginSchema(StrictSchema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))
    code = fields.String(validate=validate.Regexp(r"^[0-9]{6}$", error="six digits"),
                         metadata={"description": "TOTP code; required once the account has enrolled"})


class TotpCodeSchema(StrictSchema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[0-9]{6}$", error="six digits"))


class StepUpSchema(StrictSchema):
    """The password or a fresh one-time code, asked again before a change that moves money."""
    password = fields.String(validate=validate.Length(min=1, max=256))
    code = fields.String(validate=validate.Regexp(r"^[0-9]{6}$", error="six digits"))

    @validates_schema
    def _one_of(self, data, **kwargs):
        if ("password" in data) == ("code" in data):
            raise ValidationError("send either `password` or `code`", "_schema")


class ProcessSchema(StrictSchema):
    notice = fields.String(required=True, validate=validate.Length(min=1, max=2000),
                           metadata={"description": "told to the customer"})


class FinalizeSchema(StrictSchema):
    notice = fields.String(allow_none=True, validate=validate.Length(max=2000))


class CancelSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class EmptySchema(StrictSchema):
    pass


class AdminOrdersQuerySchema(StrictSchema):
    status = fields.String(metadata={"description": "one status or several, comma-separated"})
    exchange_type = fields.String(validate=validate.OneOf(EXCHANGE_TYPES))
    direction_id = fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    email = fields.String(validate=validate.Length(max=254))
    currency_in = fields.String(validate=validate.Regexp(r"^[A-Z0-9]{2,16}$"))
    currency_out = fields.String(validate=validate.Regexp(r"^[A-Z0-9]{2,16}$"))
    partner_code = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,32}$"))
    created_from = fields.AwareDateTime(default_timezone=None)
    created_to = fields.AwareDateTime(default_timezone=None)
    updated_from = fields.AwareDateTime(default_timezone=None)
    updated_to = fields.AwareDateTime(default_timezone=None)
    amount_in_min = AmountOrZeroString()
    amount_in_max = AmountOrZeroString()
    amount_out_min = AmountOrZeroString()
    amount_out_max = AmountOrZeroString()
    q = fields.String(validate=validate.Length(min=1, max=200),
                      metadata={"description": "search: id, reference, e-mail or recipient fragment, or an amount"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = fields.String(validate=validate.Regexp(r"^[0-9]{1,18}$"))

    @post_load
    def _to_utc(self, data, **kwargs):
        # PostgreSQL refuses offsets beyond ±15:59 that Python accepts; normalise to UTC at the edge.
        for key in ("created_from", "created_to"):
            if key in data:
                try:
                    data[key] = data[key].astimezone(datetime.timezone.utc)
                except (OverflowError, ValueError):
                    raise ValidationError("date out of range", key)
        return data

    @validates_schema
    def _statuses(self, data, **kwargs):
        if data.get("status"):
            bad = [s for s in data["status"].split(",") if s not in STATUSES]
            if bad:
                raise ValidationError("unknown status: %s" % ", ".join(bad), "status")


# -- directions, currencies, staff (admin) ----------------------------------------------------------------------
class DirectionUpdateSchema(StrictSchema):
    rate_in = AmountString()
    rate_out = AmountString()
    fee = AmountOrZeroString(metadata={"description": "percent of the amount out, below 100"})
    min_amount = AmountString()
    max_amount = AmountString()
    payment_window_minutes = fields.Integer(strict=True, validate=validate.Range(min=1, max=10080))
    active = fields.Boolean()
    # the monitors' file (docs/monitors.md): the direction's own flags and its city (cash directions; null clears)
    monitor_params = fields.List(fields.String(validate=validate.OneOf(["juridical", "verifying", "cardverify"])),
                                 validate=validate.Length(max=3))
    city = fields.String(allow_none=True, validate=validate.Regexp(r"^([A-Z0-9]{2,16})?$"))
    floating = fields.Boolean(metadata={"description": "true: the rate when the payment arrives decides the "
                                                       "amount paid out (docs/rates.md)"})


class DirectionCreateSchema(DirectionUpdateSchema):
    currency_in = fields.String(required=True, validate=validate.Regexp(r"^[A-Z0-9]{2,16}$"))
    currency_out = fields.String(required=True, validate=validate.Regexp(r"^[A-Z0-9]{2,16}$"))
    exchange_type = fields.String(required=True, validate=validate.OneOf(EXCHANGE_TYPES))
    rate_in = AmountString(required=True)
    rate_out = AmountString(required=True)
    min_amount = AmountString(required=True)
    max_amount = AmountString(required=True)


class CurrencyUpdateSchema(StrictSchema):
    name = fields.String(validate=validate.Length(min=1, max=100))
    reserve = AmountOrZeroString()
    active = fields.Boolean()
    account = fields.String(validate=validate.Length(min=1, max=100))
    payment_system = fields.String(validate=validate.Regexp(r"^[a-z0-9_]{1,32}$"))
    # the code the monitors know the currency by (USDTTRC20, SBERRUB, CARDRUB...; docs/monitors.md); null clears
    monitor_code = fields.String(allow_none=True, validate=validate.Regexp(r"^([A-Z0-9]{2,20})?$"))


class CurrencyCreateSchema(CurrencyUpdateSchema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Z0-9]{2,16}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    precision = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=18))
    account = fields.String(required=True, validate=validate.Length(min=1, max=100))
    payment_system = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9_]{1,32}$"))


class StaffCreateSchema(StrictSchema):
    username = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.@-]{3,64}$"))
    password = fields.String(required=True, validate=validate.Length(min=12, max=256))
    role = fields.String(required=True, validate=validate.OneOf(["admin", "operator", "analyst"]))
    totp_required = fields.Boolean(load_default=True)
    email = fields.Email(allow_none=True, load_default=None, validate=validate.Length(max=254),
                         metadata={"description": "own address: an admin's gets every security alert"})


class StaffUpdateSchema(StrictSchema):
    role = fields.String(validate=validate.OneOf(["admin", "operator", "analyst"]))
    active = fields.Boolean()
    totp_required = fields.Boolean()
    password = fields.String(validate=validate.Length(min=12, max=256))
    email = fields.Email(allow_none=True, validate=validate.Length(max=254))


# -- responses (documentation and tests) ------------------------------------------------------------------------
class ErrorSchema(Schema):
    error = fields.String(required=True)
    message = fields.String(required=True)
    fields = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class DirectionSchema(Schema):
    id = fields.Integer(required=True)
    currency_in = fields.String(required=True)
    currency_out = fields.String(required=True)
    rate_in = fields.String(required=True)
    rate_out = fields.String(required=True)
    min_amount = fields.String(required=True)
    max_amount = fields.String(required=True)
    reserve = fields.String(required=True, metadata={"description": "the payout account's balance"})
    reserve_available = fields.String(metadata={
        "description": "what new orders may still take: the reserve less what open orders hold"})
    exchange_type = fields.String(required=True, validate=validate.OneOf(EXCHANGE_TYPES))
    fee = fields.String(required=True, metadata={"description": "percent of the amount out"})
    payment_window_minutes = fields.Integer()
    precision_in = fields.Integer()
    precision_out = fields.Integer()
    floating = fields.Boolean(metadata={"description": "the rate at payment decides (else the order keeps its own)"})
    rate_frozen = fields.Boolean(metadata={"description": "the rate engine stopped the direction: no new orders"})
    frozen_reason = fields.String(allow_none=True)


class PayToSchema(Schema):
    system = fields.String(required=True)
    account = fields.String(required=True)
    amount = fields.String(required=True)
    currency = fields.String(required=True)
    reference = fields.String(required=True)


class HistoryItemSchema(Schema):
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    action = fields.String()
    actor = fields.String(metadata={"description": "who acted (staff API only)"})
    by = fields.String(metadata={"description": "customer or exchanger (the public order: no staff names)"})
    note = fields.String(allow_none=True)
    at = fields.String()


class OrderSchema(Schema):
    id = fields.Integer(required=True)
    token = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    exchange_type = fields.String(required=True)
    currency_in = fields.String(required=True)
    amount_in = fields.String(required=True)
    currency_out = fields.String(required=True)
    amount_out = fields.String(required=True)
    rate_in = fields.String(required=True)
    rate_out = fields.String(required=True)
    payment_flag = fields.String(allow_none=True, required=True)
    pay_to = fields.Nested(PayToSchema, required=True)
    expires_at = fields.String(required=True)
    created_at = fields.String(required=True)
    updated_at = fields.String()
    floating = fields.Boolean(metadata={"description": "the direction's rate when the payment arrives decides "
                                                       "amount_out"})
    history = fields.List(fields.Nested(HistoryItemSchema))


class OrderListSchema(Schema):
    items = fields.List(fields.Nested(OrderSchema), required=True)
    next_cursor = fields.String(allow_none=True)


class TokenSchema(Schema):
    token = fields.String(required=True)
    expires_at = fields.String()
    role = fields.String()
    enrolment_required = fields.Boolean(metadata={
        "description": "true: the token may only enrol TOTP (POST /api/v1/auth/totp, then /totp/confirm)"})
