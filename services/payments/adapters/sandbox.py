"""Adapter for the sandbox payment system (sandbox/api.py), over HTTP with one pooled requests.Session.

    PAYMENT_SYSTEMS:
      sandbox:
        adapter: sandbox
        url: http://127.0.0.1:8090          # unset or empty: $SANDBOX_URL, else http://127.0.0.1:$SANDBOX_PORT
        timeout: 10                         # seconds per call (read); connecting gives up after 3 s
        api_key_env: SANDBOX_API_KEY        # optional: the variable that holds a bearer token

History cursors are the sandbox's integer entry cursors, kept as text (the service treats cursors as opaque).
"""
import datetime
import logging
import os
from decimal import Decimal, InvalidOperation

import requests
from requests.adapters import HTTPAdapter

from services.payments.adapters.base import (FAILED, SENT, UNKNOWN, Entry, Page, PaymentSystemAdapter,
                                             PayoutResult, ProviderError)

log = logging.getLogger(__name__)

# Answers after which the payout may or may not have happened: look it up by key later.
_UNKNOWN_STATUSES = {408, 409, 425, 429}

# A transfer's state (`status`) -> what it means for a payout. The sandbox writes its transfers `completed`
# (sandbox/domain.py, TRANSFER_COMPLETED; the column's default, so an answer without the field is one too).
# Only a completed transfer moved the money; one that definitely did not is failed; any other state (pending,
# processing, reversed, a state added later) is neither and is looked up again, never guessed.
_COMPLETED_STATES = {"completed"}
_FAILED_STATES = {"failed", "rejected", "declined", "canceled", "cancelled"}


def _transfer_result(transfer):
    """The PayoutResult of a transfer the sandbox has under our key, read from its state."""
    provider_id = str(transfer["id"])
    state = transfer.get("status", "completed")
    if state in _COMPLETED_STATES:
        return PayoutResult(SENT, provider_id, None, transfer)
    if state in _FAILED_STATES:
        return PayoutResult(FAILED, provider_id, "transfer %s is %s" % (provider_id, state), transfer)
    return PayoutResult(UNKNOWN, provider_id, "transfer %s is %s" % (provider_id, state), transfer)


def _parse_time(text):
    value = datetime.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value


def _error_text(response):
    try:
        body = response.json()
        return "%s %s: %s" % (response.status_code, body.get("error"), body.get("message"))
    except ValueError:
        return "%s %s" % (response.status_code, response.text[:200])


class Adapter(PaymentSystemAdapter):
    name = "sandbox"

    def __init__(self, system, settings, environ=None):
        super().__init__(system, settings, environ)
        environ = os.environ if environ is None else environ
        # The port alone is enough (SANDBOX_PORT moves the sandbox, so it moves its clients too).
        self.url = (self.settings.get("url") or environ.get("SANDBOX_URL") or
                    "http://127.0.0.1:%s" % environ.get("SANDBOX_PORT", "8090")).rstrip("/")
        self.timeout = float(self.settings.get("timeout") or 10)
        self.connect_timeout = min(3.0, self.timeout)
        self.session = requests.Session()
        # Connections are reused across polls (1,000 accounts every 15 s would otherwise open 67 sockets/s).
        pool = int(self.settings.get("pool") or 64)
        http = HTTPAdapter(pool_connections=4, pool_maxsize=pool, max_retries=0)
        self.session.mount("http://", http)
        self.session.mount("https://", http)
        key_env = self.settings.get("api_key_env")
        if key_env and environ.get(key_env):
            self.session.headers["Authorization"] = "Bearer " + environ[key_env]

    def _request(self, method, path, **kwargs):
        try:
            return self.session.request(method, self.url + path,
                                        timeout=(self.connect_timeout, self.timeout), **kwargs)
        except requests.RequestException as exc:
            raise ProviderError("%s %s: %s" % (method, path, exc.__class__.__name__)) from exc

    def _json(self, response, what):
        if response.status_code != 200:
            raise ProviderError("%s: %s" % (what, _error_text(response)))
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderError("%s: not JSON" % what) from exc

    # -- reads -----------------------------------------------------------------------------------------------
    def list_incoming(self, account, cursor, limit=500):
        params = {"limit": int(limit)}
        if cursor not in (None, ""):
            params["after"] = int(cursor)
        body = self._json(self._request("GET", "/api/accounts/%s/history" % account, params=params),
                          "history of %s" % account)
        try:
            entries = [Entry(external_id=item["transfer_id"], direction="in" if item["type"] == "in" else "out",
                             amount=Decimal(item["amount"]), currency=item["currency"],
                             reference=item.get("reference") or "", counterparty=item.get("counterparty"),
                             occurred_at=_parse_time(item["created_at"]), cursor=str(item["cursor"]))
                       for item in body["items"]]
            next_cursor = body.get("next_cursor")
            next_cursor = str(next_cursor) if next_cursor is not None else cursor
            return Page(entries, next_cursor, bool(body.get("has_more")))
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise ProviderError("history of %s: unexpected answer (%s)" % (account, exc)) from exc

    def balance(self, account):
        body = self._json(self._request("GET", "/api/accounts/%s" % account), "balance of %s" % account)
        try:
            return Decimal(body["balance"])
        except (KeyError, TypeError, InvalidOperation) as exc:
            raise ProviderError("balance of %s: unexpected answer" % account) from exc

    # -- payouts ---------------------------------------------------------------------------------------------
    def send_payout(self, from_account, to_account, amount, currency, idempotency_key, reference):
        body = {"from_account": from_account, "to_account": to_account, "amount": format(amount, "f"),
                "currency": currency, "reference": reference or ""}
        try:
            response = self._request("POST", "/api/transfers", json=body,
                                     headers={"Idempotency-Key": idempotency_key})
        except ProviderError as exc:
            return PayoutResult(UNKNOWN, None, str(exc), None)
        if response.status_code in (200, 201):
            try:
                return _transfer_result(response.json())
            except (ValueError, KeyError, TypeError, AttributeError):
                return PayoutResult(UNKNOWN, None, "accepted, but the answer is unreadable", None)
        error = _error_text(response)
        if response.status_code >= 500 or response.status_code in _UNKNOWN_STATUSES:
            return PayoutResult(UNKNOWN, None, error, None)
        if "idempotency_key_reused" in error:
            # Someone else's transfer carries our key: not ours to call failed or sent. A person must look.
            return PayoutResult(UNKNOWN, None, error, None)
        return PayoutResult(FAILED, None, error, None)

    def find_payout(self, idempotency_key):
        body = self._json(self._request("GET", "/api/transfers", params={"idempotency_key": idempotency_key}),
                          "lookup of %s" % idempotency_key)
        items = body.get("items") if isinstance(body, dict) else None
        if items is None:
            raise ProviderError("lookup of %s: unexpected answer" % idempotency_key)
        if not items:
            return None
        try:
            return _transfer_result(items[0])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ProviderError("lookup of %s: unexpected answer" % idempotency_key) from exc

    def close(self):
        self.session.close()
