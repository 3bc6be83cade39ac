"""Pure rules of the staff security and the pages: TOTP step matching (window, replay), safe redirects after
sign-in, the inline SVG chart, page texts in both languages, the security headers."""
import time

import pyotp
import pytest
from flask import Flask

from gateway.pages import safe_next
from gateway.pages.charts import bar_chart
from gateway.pages.i18n import TEXTS
from gateway.security.headers import CSP_API, security_headers
from gateway.security.totp import TotpStore


def test_totp_accepts_the_current_and_neighbouring_steps_once():
    secret = pyotp.random_base32()
    totp = pyotp.TOTP(secret)
    step = int(time.time()) // 30
    for s in (step - 1, step, step + 1):
        assert TotpStore._match(secret, totp.generate_otp(s), 0) == s
    assert TotpStore._match(secret, totp.generate_otp(step), step) is None        # replayed
    assert TotpStore._match(secret, totp.generate_otp(step - 1), step - 1) is None
    assert TotpStore._match(secret, totp.generate_otp(step + 1), step) == step + 1
    assert TotpStore._match(secret, totp.generate_otp(step - 2), 0) is None         # too old
    assert TotpStore._match(secret, totp.generate_otp(step + 2), 0) is None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", None, "12 34 5"])
def test_totp_rejects_malformed_codes(code):
    assert TotpStore._match(pyotp.random_base32(), code, 0) is None


@pytest.mark.parametrize("target, expected", [
    ("/admin/orders?status=new", "/admin/orders?status=new"),
    ("/admin/", "/admin/"),
    ("//evil.example/admin", "/admin/"),
    ("https://evil.example/admin/", "/admin/"),
    ("/orders/abc", "/admin/"),
    ("javascript:alert(1)", "/admin/"),
    (None, "/admin/"),
])
def test_only_local_admin_paths_follow_sign_in(target, expected):
    assert safe_next(target) == expected


def test_chart_is_plain_svg_with_escaped_labels():
    svg = str(bar_chart([("05-01", 3), ("<b>", 10)], "requests <per> day", "c1"))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert "style=" not in svg and "<script" not in svg  # nothing the CSP would refuse
    assert svg.count('class="bar"') == 2
    assert "no data yet" in str(bar_chart([], "empty", "c2"))


def test_every_text_exists_in_both_languages():
    for key, pair in TEXTS.items():
        assert len(pair) == 2 and all(pair), key


def test_security_headers_on_pages_and_json():
    app = Flask(__name__)
    app.config["HSTS_SECONDS"] = 31536000
    app.after_request(security_headers)
    app.add_url_rule("/page", "page", lambda: "<p>hi</p>")
    app.add_url_rule("/api/x", "api", lambda: {"ok": True})
    client = app.test_client()
    page, api = client.get("/page"), client.get("/api/x")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    assert api.headers["Content-Security-Policy"] == CSP_API
    for r in (page, api):
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
        assert r.headers["Cache-Control"] == "no-store"


def test_the_admins_addresses_are_handed_to_the_notifier_when_they_change_until_it_answers():
    from gateway.security.alerts import Alerts
    alerts, calls = Alerts(None), []

    def down(emails):
        raise RuntimeError("notifier down")
    try:
        alerts.sync_recipients(["b@example.com", "a@example.com"], down)
    except RuntimeError:
        pass
    alerts.sync_recipients(["b@example.com", "a@example.com"], calls.append)     # retried at the next sweep
    alerts.sync_recipients(["a@example.com", "b@example.com"], calls.append)     # same list: no call
    alerts.sync_recipients([], calls.append)                                     # the last admin address removed
    assert calls == [["a@example.com", "b@example.com"], []]
def test_chart_axes_end_on_round_numbers_with_round_ticks():
    from decimal import Decimal
    from gateway.pages.charts import _label, nice_top, ticks
    assert [str(int(nice_top(v))) for v in (3, 26, 480, 1234)] == ["5", "50", "500", "2000"]
    top = nice_top(Decimal(2300000))
    assert [_label(top * f) for f in ticks(top)] == ["0", "500k", "1M", "1.5M", "2M", "2.5M"]
    svg = str(bar_chart([("05-01", 26), ("05-02", 7)], "requests per day", "c3"))
    assert ">50<" in svg and ">40<" in svg and "E+" not in svg
