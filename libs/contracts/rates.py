"""What the rate engine (services/rates/) tells others (docs/rates.md): its verdicts on directions, which orders
applies compare-and-set by `seq` (a newer verdict of a direction only), and the directions a guard froze, which the
notifier announces to the admin."""
from marshmallow import EXCLUDE, Schema, fields, validate

from libs.contracts.fields import Money


class RateVerdictSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    direction_id = fields.Integer(required=True)
    seq = fields.Integer(required=True, validate=validate.Range(min=1))   # grows with every verdict published
    # None while frozen (the direction keeps its last rate, and takes no orders)
    rate_in = Money(allow_none=True, load_default=None)
    rate_out = Money(allow_none=True, load_default=None)
    frozen = fields.Boolean(required=True)
    reason = fields.String(allow_none=True, load_default=None)
    code = fields.String(allow_none=True, load_default=None)   # stale, failed, spread, jump, removed


class RatesComputedSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    items = fields.List(fields.Nested(RateVerdictSchema), required=True)


class FrozenItemSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    direction_id = fields.Integer(required=True)
    pair = fields.String(required=True)
    reason = fields.String(required=True)
    code = fields.String(allow_none=True, load_default=None)


class DirectionsFrozenSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    items = fields.List(fields.Nested(FrozenItemSchema), required=True)
