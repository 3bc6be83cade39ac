"""Pure rules of the orders service, no I/O: the order state machine and quotes (orders.py), the checks of
directions and currencies (catalogue.py), customer accounts (accounts.py) and the partner programme (partners.py).
Each is unit-tested directly; the store calls them inside its transactions."""
import hashlib
import json


class RuleError(Exception):
    """A rule said no: `message` for the caller, `fields` naming what is at fault (the gateway shows them)."""

    def __init__(self, message, fields=None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


def request_hash(values):
    """SHA-256 of a request in canonical form (keys sorted, amounts as plain decimal strings): what an idempotency
    key is bound to, so the same key with another request is told apart from a retry."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_same_request(stored_hash, new_hash, key_name="Idempotency-Key"):
    """RuleError if an idempotency key comes back with another request than the one it was first used for (a key
    stored before requests were hashed has no hash, and is taken as the same request)."""
    if stored_hash is not None and stored_hash != new_hash:
        raise RuleError("this %s was used for a different request: use a new one for a new request" % key_name,
                        {key_name: ["used for a different request"]})
