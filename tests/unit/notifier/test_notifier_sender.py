"""The sender's decisions per attempt (fakes for the store and providers), SMTP URLs and Twilio error classes."""
import datetime

import pytest
import requests

from services.notifier.sender import Sender
from services.notifier.transports import SendError, classify_twilio_error, parse_smtp_url


class FakeStore:
    def __init__(self):
        self.calls = []

    def mark_sent(self, row, provider_id, provider_status=None, detail=None):
        self.calls.append(("sent", provider_id, provider_status))
        return row

    def mark_retry(self, row, error, delay, outcome_unknown=False):
        self.calls.append(("retry", delay, outcome_unknown))
        return row

    def mark_failed(self, row, error, outcome_unknown=False):
        self.calls.append(("failed", error, outcome_unknown))
        return row


class FakeProvider:
    def __init__(self, *outcomes, found=None):
        self.outcomes = list(outcomes)
        self.found = found
        self.sends = 0
        self.lookups = 0

    def send(self, row):
        self.sends += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def find_sent(self, row, since):
        self.lookups += 1
        return self.found


def row(channel="email", attempts=1, max_attempts=3, outcome_unknown=False):
    return {"id": 1, "kind": "L1", "channel": channel, "recipient": "x@example.com", "attempts": attempts,
            "max_attempts": max_attempts, "outcome_unknown": outcome_unknown, "resends": 0,
            "created_at": datetime.datetime.now(datetime.timezone.utc)}


def sender(mailer=None, sms=None):
    store = FakeStore()
    return Sender(store, mailer, sms, concurrency=2, retry_base=2, retry_cap=30), store


def test_email_sent():
    s, store = sender(mailer=FakeProvider("<id@x>"))
    s.process(row())
    assert store.calls == [("sent", "<id@x>", None)]


def test_transient_error_retries_with_backoff_until_the_last_attempt():
    s, store = sender(mailer=FakeProvider(SendError("down", transient=True), SendError("down", transient=True)))
    s.process(row(attempts=2))
    s.process(row(attempts=3))
    assert store.calls == [("retry", 4, False), ("failed", "down", False)]


def test_permanent_error_fails_at_once():
    s, store = sender(mailer=FakeProvider(SendError("550 no such user", transient=False)))
    s.process(row(attempts=1))
    assert store.calls == [("failed", "550 no such user", False)]


def test_unexpected_error_is_retried_too():
    s, store = sender(mailer=FakeProvider(RuntimeError("bug")))
    s.process(row(attempts=1))
    assert store.calls[0][0] == "retry"


def test_reclaimed_row_past_its_attempts_fails_without_sending():
    mailer = FakeProvider("<id@x>")
    s, store = sender(mailer=mailer)
    s.process(row(attempts=4, max_attempts=3, outcome_unknown=True))
    assert mailer.sends == 0 and store.calls[0][0] == "failed" and store.calls[0][2] is True


def test_sms_with_unknown_outcome_is_looked_up_before_sending_again():
    sms = FakeProvider(found=("SM" + "a" * 32, "delivered"))
    s, store = sender(sms=sms)
    s.process(row("sms", attempts=2, outcome_unknown=True))
    assert (sms.lookups, sms.sends) == (1, 0)
    assert store.calls == [("sent", "SM" + "a" * 32, "delivered")]


def test_sms_with_unknown_outcome_not_found_is_sent():
    sms = FakeProvider(("SM" + "b" * 32, "queued"), found=None)
    s, store = sender(sms=sms)
    s.process(row("sms", attempts=2, outcome_unknown=True))
    assert (sms.lookups, sms.sends) == (1, 1)
    assert store.calls == [("sent", "SM" + "b" * 32, "queued")]


def test_sms_lookup_failure_keeps_the_outcome_unknown():
    sms = FakeProvider()
    sms.find_sent = lambda row, since: (_ for _ in ()).throw(SendError("Twilio 503", transient=True))
    s, store = sender(sms=sms)
    s.process(row("sms", attempts=1, outcome_unknown=True))
    assert store.calls == [("retry", 2, True)] and sms.sends == 0


@pytest.mark.parametrize("url,expected", [
    ("smtp://127.0.0.1:8025", ("127.0.0.1", 8025, None, None, None)),
    ("smtp+starttls://user:p%40ss@mail.example.com", ("mail.example.com", 587, "starttls", "user", "p@ss")),
    ("smtps://u:p@mail.example.com:2465", ("mail.example.com", 2465, "tls", "u", "p")),
    ("smtp://mx", ("mx", 25, None, None, None))])
def test_smtp_urls(url, expected):
    p = parse_smtp_url(url)
    assert (p["host"], p["port"], p["security"], p["username"], p["password"]) == expected


def test_smtp_url_scheme_is_checked():
    with pytest.raises(ValueError):
        parse_smtp_url("http://mail.example.com")


def twilio_error(status):
    from twilio.base.exceptions import TwilioRestException
    return TwilioRestException(status, "https://api.twilio.com/x", msg="boom", code=20000 + status)


@pytest.mark.parametrize("exc,transient,unknown", [
    (twilio_error(500), True, True), (twilio_error(503), True, True), (twilio_error(429), True, False),
    (twilio_error(400), False, False), (twilio_error(401), False, False),
    (requests.exceptions.ReadTimeout("read timed out"), True, True),
    (requests.exceptions.ConnectTimeout("connect timed out"), True, False),
    (requests.exceptions.ConnectionError("NewConnectionError: Connection refused"), True, False),
    (requests.exceptions.ConnectionError("Connection aborted, RemoteDisconnected"), True, True)])
def test_twilio_errors(exc, transient, unknown):
    err = classify_twilio_error(exc)
    assert (err.transient, err.outcome_unknown) == (transient, unknown)
