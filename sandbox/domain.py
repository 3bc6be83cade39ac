"""Pure rules of the sandbox payment system: identifiers, currency precision, transfer checks, fault options.

No I/O here; storage.py and the HTTP layer call these and turn `SandboxError`s into JSON answers.
"""
import re
from decimal import Decimal

from libs import money

DEFAULT_PRECISION = 2
# Decimal places a currency's amounts may carry; everything else has DEFAULT_PRECISION.
PRECISION = {"USDT": 6, "BTC": 8}

CURRENCY_RE = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")
ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# Printable ASCII without spaces: UUIDs, "payout-123", base64 tokens.
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
MAX_REFERENCE = 200
MAX_OWNER = 100

HISTORY_DEFAULT_LIMIT = 100
HISTORY_MAX_LIMIT = 1000

FAULT_OPERATIONS = ("transfer", "history", "balance", "lookup", "any")
FAULT_MODES = ("error", "timeout", "refuse")
FAULT_APPLY = ("before", "after")
DEFAULT_TIMEOUT_DELAY = Decimal(30)
MAX_FAULT_DELAY = Decimal(3600)

TRANSFER_COMPLETED = "completed"


class SandboxError(Exception):
    """An answer the API gives on purpose: HTTP status, a stable error code, a message and per-field details."""
    status = 400
    code = "error"

    def __init__(self, message, fields=None, **extra):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.extra = extra

    def to_wire(self):
        body = {"error": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        body.update(self.extra)
        return body


class InvalidRequest(SandboxError):
    """Malformed input: not JSON, wrong types, unknown fields."""
    status = 400
    code = "invalid_request"


class ValidationFailed(SandboxError):
    """Well-formed input that breaks a rule: precision, currency mismatch, paying oneself."""
    status = 422
    code = "validation_failed"


class NotFound(SandboxError):
    status = 404
    code = "not_found"


class AccountExists(SandboxError):
    status = 409
    code = "account_exists"


class InsufficientFunds(SandboxError):
    status = 422
    code = "insufficient_funds"


class IdempotencyKeyReused(SandboxError):
    status = 422
    code = "idempotency_key_reused"


def precision_for(currency):
    return PRECISION.get(currency, DEFAULT_PRECISION)


def check_precision(amount, precision, currency, field="amount"):
    """Raise ValidationFailed if `amount` has more decimal places than the currency allows."""
    if money.fraction_digits(amount) > precision:
        raise ValidationFailed(
            "%s allows at most %d decimal places" % (currency, precision),
            {field: ["at most %d decimal places for %s" % (precision, currency)]})


def check_new_account(currency, balance, precision):
    check_precision(balance, precision, currency, field="balance")


def check_transfer(source, target, amount, currency):
    """Rules that need both accounts (dicts with account, currency, precision). Funds are checked separately,
    under the row lock."""
    if source["account"] == target["account"]:
        raise ValidationFailed("cannot transfer to the same account",
                               {"to_account": ["must differ from from_account"]})
    errors = {}
    if source["currency"] != currency:
        errors["currency"] = ["%s is a %s account" % (source["account"], source["currency"])]
    elif target["currency"] != currency:
        errors["currency"] = ["%s is a %s account" % (target["account"], target["currency"])]
    if errors:
        raise ValidationFailed("currency does not match the accounts", errors)
    check_precision(amount, source["precision"], currency)


def check_funds(source, amount):
    if source["balance"] < amount:
        raise InsufficientFunds("insufficient funds on %s" % source["account"],
                                {"amount": ["exceeds the available balance"]})


def same_transfer(existing, from_account, to_account, amount, currency, reference):
    """Does a retry carry the same parameters as the transfer stored under its idempotency key?"""
    return (existing["from_account"] == from_account
            and existing["to_account"] == to_account
            and Decimal(existing["amount"]) == amount
            and existing["currency"] == currency
            and (existing["reference"] or "") == (reference or ""))


def check_replay(existing, from_account, to_account, amount, currency, reference):
    if not same_transfer(existing, from_account, to_account, amount, currency, reference):
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used for a different transfer",
            {"idempotency_key": ["already used with other parameters"]},
            transfer_id=str(existing["id"]))
    return existing


def fault_statuses():
    """HTTP answers of each fault mode (timeout answers after sleeping delay_s)."""
    return {"error": 500, "timeout": 504, "refuse": 422}
