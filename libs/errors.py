"""Errors a service raises to its callers. nameko sends them as {exc_type, exc_args}; the gateway maps the
type name to an HTTP status (gateway/errors.py), so these names are part of the contract."""


class ExchangerError(Exception):
    code = "error"

    def __init__(self, message, fields=None):
        super().__init__(message, fields or {})
        self.message = message
        self.fields = fields or {}


class NotFound(ExchangerError):
    code = "not_found"


class ValidationFailed(ExchangerError):
    """Input is well-formed but breaks a business rule (limits, reserve, precision). -> 422 with fields."""
    code = "validation_failed"


class Conflict(ExchangerError):
    """The transition is not allowed from the current status, or a concurrent actor won. -> 409"""
    code = "conflict"


class Forbidden(ExchangerError):
    code = "forbidden"


def staff_actor(actor):
    """An operator command's actor (the signed-in staff member, passed by the gateway), marked as staff; an
    operator command without one is refused."""
    actor = dict(actor or {})
    if not actor.get("name"):
        raise Forbidden("operator actions need an actor")
    actor["kind"] = "staff"
    return actor


# Everything an RPC may raise on purpose; pass as expected_exceptions so nameko does not log them as crashes.
EXPECTED = (NotFound, ValidationFailed, Conflict, Forbidden)
BY_NAME = {cls.__name__: cls for cls in EXPECTED}
