"""The Twilio status-callback webhook: Twilio's signature over the PUBLIC URL, 403 otherwise; forwarded by RPC."""
import pytest
from flask import Flask
from prometheus_client import REGISTRY
from twilio.request_validator import RequestValidator

from gateway import errors
from gateway.api import notifications

TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC = "https://exchanger.example"
URL = PUBLIC + "/api/v1/webhooks/twilio"
SID = "SM" + "0" * 32


class FakeStaffStore:
    def __init__(self):
        self.audits = []

    def audit(self, actor, action, **kw):
        self.audits.append((actor, action, kw.get("outcome")))


class FakeNotifier:
    def __init__(self):
        self.calls = []

    def sms_status_callback(self, sid, status, error_code=None):
        self.calls.append((sid, status, error_code))
        return {"outcome": "applied"}


@pytest.fixture
def app(monkeypatch):
    app = Flask(__name__)
    app.config.update(PUBLIC_URL=PUBLIC, TWILIO_AUTH_TOKEN=TOKEN, TESTING=True)
    app.extensions["staff"] = FakeStaffStore()
    errors.init_app(app)
    app.register_blueprint(notifications.bp)
    fake = FakeNotifier()
    monkeypatch.setattr(notifications, "notifier", lambda: fake)
    app.fake = fake
    return app


def post(app, params, signature):
    # The request reaches the app as http://localhost/...; the signature is over the public URL.
    return app.test_client().post("/api/v1/webhooks/twilio", data=params,
                                  headers={"X-Twilio-Signature": signature} if signature is not None else {})


def params(status="delivered"):
    return {"MessageSid": SID, "MessageStatus": status, "AccountSid": "AC" + "1" * 32, "To": "+15550001111"}


def test_valid_signature_is_forwarded(app):
    p = params()
    r = post(app, p, RequestValidator(TOKEN).compute_signature(URL, p))
    assert r.status_code == 200, r.get_json()
    assert app.fake.calls == [(SID, "delivered", None)]


@pytest.mark.parametrize("signature", [None, "", "bm90IGEgc2lnbmF0dXJl", "x" * 300])
def test_missing_or_forged_signature_is_403(app, signature):
    before = REGISTRY.get_sample_value("exchanger_twilio_bad_signatures_total", {"reason": "bad signature"}) or 0
    r = post(app, params(), signature)
    assert r.status_code == 403 and r.get_json()["error"] == "forbidden"
    assert app.fake.calls == []
    # counted in a metric, not one audit row per forged call
    assert REGISTRY.get_sample_value("exchanger_twilio_bad_signatures_total", {"reason": "bad signature"}) == before + 1
    assert app.extensions["staff"].audits == []


def test_signature_over_other_params_or_url_is_rejected(app):
    signed = params("sent")
    signature = RequestValidator(TOKEN).compute_signature(URL, signed)
    assert post(app, params("delivered"), signature).status_code == 403       # tampered status
    other = RequestValidator(TOKEN).compute_signature("http://localhost/api/v1/webhooks/twilio", signed)
    assert post(app, signed, other).status_code == 403                         # not our public URL
    wrong_key = RequestValidator("another-token").compute_signature(URL, signed)
    assert post(app, signed, wrong_key).status_code == 403
    assert app.fake.calls == []


def test_without_an_auth_token_nothing_is_accepted(app):
    app.config["TWILIO_AUTH_TOKEN"] = ""
    p = params()
    r = post(app, p, RequestValidator("").compute_signature(URL, p))
    assert r.status_code == 403


def test_signed_but_incomplete_is_400(app):
    p = {"MessageSid": SID}
    r = post(app, p, RequestValidator(TOKEN).compute_signature(URL, p))
    assert r.status_code == 400
