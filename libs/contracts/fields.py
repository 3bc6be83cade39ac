"""marshmallow fields the contracts share. Amounts are Decimal in Python and plain decimal strings on the wire."""
from marshmallow import ValidationError, fields

from libs import money


class Money(fields.Decimal):
    """An amount in an event payload: loads to Decimal, dumps as plain text ('100', never '1E+2')."""

    def __init__(self, **kwargs):
        super().__init__(as_string=True, **kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return money.to_str(value)


class StrictMoney(Money):
    """An amount that must travel as a decimal string: a JSON number is refused, it may already have been a
    float."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("amounts travel as decimal strings")
        return super()._deserialize(value, attr, data, **kwargs)


class AmountString(fields.String):
    """A positive decimal amount as a string ("100.50"); numbers are refused so no float ever touches money."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("must be a decimal string, e.g. \"100.50\"")
        try:
            return money.to_str(money.parse_amount(value))
        except money.AmountError as exc:
            raise ValidationError(str(exc))


class AmountOrZeroString(AmountString):
    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("must be a decimal string, e.g. \"0.5\"")
        try:
            return money.to_str(money.parse_amount(value, allow_zero=True))
        except money.AmountError as exc:
            raise ValidationError(str(exc))
