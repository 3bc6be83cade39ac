"""The sandbox adapter's reading of HTTP answers: what counts as sent, failed (definitely not) or unknown."""
import datetime
from decimal import Decimal as D

import pytest
import requests

from services.payments.adapters import FAILED, SENT, UNKNOWN, ProviderError, build


class FakeResponse:
    def __init__(self, status, body):
        self.status_code = status
        self._body = body
        self.text = str(body)

    def json(self):
        if isinstance(self._body, Exception):
            raise self._body
        return self._body


@pytest.fixture
def adapter(monkeypatch):
    a = build("sandbox", {"adapter": "sandbox", "url": "http://sandbox.test", "timeout": 2})
    a.calls = []

    def answer(response):
        def request(method, url, **kwargs):
            a.calls.append((method, url, kwargs))
            if isinstance(response, Exception):
                raise response
            return response
        monkeypatch.setattr(a.session, "request", request)
    a.answer = answer
    return a


TRANSFER = {"id": "t-1", "from_account": "EXCH-EUR", "to_account": "ALICE-EUR", "amount": "92",
            "currency": "EUR", "reference": "EXABCDEFGH23", "idempotency_key": "payout-x-1-1"}


def send(adapter):
    return adapter.send_payout("EXCH-EUR", "ALICE-EUR", D("92.000000000000000000"), "EUR", "payout-x-1-1",
                               "EXABCDEFGH23")


@pytest.mark.parametrize("status", [200, 201])
def test_accepted_payout_is_sent(adapter, status):
    adapter.answer(FakeResponse(status, TRANSFER))
    result = send(adapter)
    assert (result.status, result.provider_id) == (SENT, "t-1")
    method, url, kwargs = adapter.calls[0]
    assert (method, url) == ("POST", "http://sandbox.test/api/transfers")
    assert kwargs["headers"]["Idempotency-Key"] == "payout-x-1-1"
    assert kwargs["json"]["amount"] == "92.000000000000000000" and isinstance(kwargs["json"]["amount"], str)
    assert kwargs["timeout"] == (2.0, 2.0)


@pytest.mark.parametrize("response", [
    FakeResponse(500, {"error": "internal_error"}), FakeResponse(504, {"error": "timeout"}),
    FakeResponse(502, ValueError("html")), FakeResponse(429, {"error": "slow down"}),
    FakeResponse(201, ValueError("garbled")),
    FakeResponse(422, {"error": "idempotency_key_reused", "message": "x"}),
    requests.ReadTimeout("read timed out"), requests.ConnectionError("reset"),
])
def test_ambiguous_answers_are_unknown(adapter, response):
    adapter.answer(response)
    assert send(adapter).status == UNKNOWN


@pytest.mark.parametrize("response", [
    FakeResponse(422, {"error": "refused", "message": "declined"}),
    FakeResponse(422, {"error": "insufficient_funds", "message": "x"}),
    FakeResponse(404, {"error": "not_found", "message": "unknown account"}),
    FakeResponse(400, {"error": "invalid_request", "message": "x"}),
])
def test_definite_refusals_are_failed(adapter, response):
    adapter.answer(response)
    result = send(adapter)
    assert result.status == FAILED and str(response.status_code) in result.error


def test_find_payout(adapter):
    adapter.answer(FakeResponse(200, {"items": [TRANSFER]}))
    assert adapter.find_payout("payout-x-1-1").provider_id == "t-1"
    adapter.answer(FakeResponse(200, {"items": []}))
    assert adapter.find_payout("payout-x-1-1") is None
    for bad in (FakeResponse(500, {}), FakeResponse(200, {"nope": 1}), requests.ReadTimeout()):
        adapter.answer(bad)
        with pytest.raises(ProviderError):
            adapter.find_payout("payout-x-1-1")


def test_history_page(adapter):
    adapter.answer(FakeResponse(200, {"items": [
        {"id": "e1", "cursor": 7, "type": "in", "transfer_id": "t-9", "account": "EXCH-USDT",
         "counterparty": "ALICE-USDT", "amount": "100.5", "currency": "USDT", "reference": "EXABCDEFGH23",
         "created_at": "2026-01-01T12:00:00+00:00"},
        {"id": "e2", "cursor": 9, "type": "out", "transfer_id": "t-10", "account": "EXCH-USDT",
         "counterparty": "BOB", "amount": "3", "currency": "USDT", "reference": "", "created_at":
         "2026-01-01T12:01:00+00:00"}], "next_cursor": 9, "has_more": False}))
    page = adapter.list_incoming("EXCH-USDT", "5", limit=50)
    assert adapter.calls[0][2]["params"] == {"limit": 50, "after": 5}
    assert [e.direction for e in page.entries] == ["in", "out"]
    first = page.entries[0]
    assert (first.external_id, first.amount, first.cursor) == ("t-9", D("100.5"), "7")
    assert first.occurred_at == datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.timezone.utc)
    assert (page.next_cursor, page.has_more) == ("9", False)


def test_history_errors_are_provider_errors(adapter):
    adapter.answer(FakeResponse(500, {"error": "internal_error"}))
    with pytest.raises(ProviderError):
        adapter.list_incoming("EXCH-USDT", None)
    adapter.answer(FakeResponse(200, {"items": [{"cursor": 1}]}))
    with pytest.raises(ProviderError):
        adapter.list_incoming("EXCH-USDT", None)


def test_secret_comes_from_the_environment():
    a = build("sandbox", {"adapter": "sandbox", "api_key_env": "SANDBOX_API_KEY"})
    assert "Authorization" not in a.session.headers
    from services.payments.adapters import sandbox
    b = sandbox.Adapter("sandbox", {"api_key_env": "SANDBOX_API_KEY"}, environ={"SANDBOX_API_KEY": "s3cret"})
    assert b.session.headers["Authorization"] == "Bearer s3cret"
    assert b.url == "http://127.0.0.1:8090"


@pytest.mark.parametrize("state, expected", [
    ("completed", SENT),
    ("failed", FAILED), ("rejected", FAILED), ("declined", FAILED), ("canceled", FAILED), ("cancelled", FAILED),
    ("pending", UNKNOWN), ("processing", UNKNOWN), ("reversed", UNKNOWN), ("something-new", UNKNOWN),
])
def test_sandbox_lookup_maps_the_transfer_state(adapter, state, expected):
    """A transfer found under our key is `sent` only when it completed; a definitely failed one is failed; a
    pending or unknown state is neither (the reconciler looks again)."""
    adapter.answer(FakeResponse(200, {"items": [dict(TRANSFER, status=state)]}))
    found = adapter.find_payout("payout-x-1-1")
    assert (found.status, found.provider_id) == (expected, "t-1")
    # The same transfer as the answer to the payout call itself reads the same way.
    adapter.answer(FakeResponse(201, dict(TRANSFER, status=state)))
    assert send(adapter).status == expected
