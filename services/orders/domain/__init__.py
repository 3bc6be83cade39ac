"""Pure rules of the orders service, no I/O: the order state machine and quotes (orders.py), the checks of
directions and currencies (catalogue.py), customer accounts (accounts.py) and the partner programme (partners.py).
Each is unit-tested directly; the store calls them inside its transactions."""


class RuleError(Exception):
    """A rule said no: `message` for the caller, `fields` naming what is at fault (the gateway shows them)."""

    def __init__(self, message, fields=None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
