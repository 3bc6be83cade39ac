"""Behind a proxy and in production (docs/security.md): TRUSTED_PROXIES believes exactly that many forwarding
hops, the CSRF-carrying cookie gets the __Host- prefix on https, EXCHANGER_ENV=production refuses default
credentials naming each, and the reporting CSV endpoint needs its token off loopback."""
import pytest
from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

import gateway
from libs import config
from services.reporting import domain as reporting_domain


def test_trusted_proxies_decides_whose_address_the_gateway_sees(monkeypatch):
    monkeypatch.setattr(gateway.security, "init_app", lambda app, database: None)  # no database here
    monkeypatch.setattr(gateway.pages, "init_app", lambda app: None)
    for hops, expected in ((0, "127.0.0.1"), (1, "203.0.113.9"), (2, "198.51.100.1")):
        app = gateway.create_app({"TRUSTED_PROXIES": hops})
        assert isinstance(app.wsgi_app, ProxyFix) == bool(hops)

        @app.get("/whoami")
        def whoami():
            return {"ip": request.remote_addr, "scheme": request.scheme}
        got = app.test_client().get("/whoami", headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9",
                                                        "X-Forwarded-Proto": "https, https"}).get_json()
        assert got["ip"] == expected
        assert got["scheme"] == ("https" if hops else "http")


@pytest.mark.parametrize("secure, name", [(True, "__Host-exchanger_s"), (False, "exchanger_s")])
def test_the_csrf_cookie_has_the_host_prefix_on_https(secure, name):
    from gateway.security import init_app
    app = Flask(__name__)
    app.config.update(SECRET_KEY="k" * 40, COOKIE_SECURE=secure, SESSION_MAX_HOURS=1.0, DATABASE_URL="postgresql://x",
                      SESSION_IDLE_MINUTES=30.0, TOTP_ISSUER="t", LOCKOUT_THRESHOLD=5, LOCKOUT_USER_THRESHOLD=20,
                      LOCKOUT_WINDOW_MINUTES=15.0, LOCKOUT_MINUTES=15.0, LOCKOUT_MAX_MINUTES=60.0,
                      PRE_AUTH_MINUTES=5.0)
    init_app(app, database=None)
    assert app.config["SESSION_COOKIE_NAME"] == name
    assert app.config["SESSION_COOKIE_SECURE"] is secure and app.config["SESSION_COOKIE_PATH"] == "/"
    assert app.config["SESSION_COOKIE_DOMAIN"] is None


SAFE = {"DATABASE_URL": "postgresql://exchanger:Db-long-secret@db:5432/exchanger",
        "AMQP_URI": "pyamqp://exchanger:Mq-long-secret@mq:5672/", "GATEWAY_SECRET_KEY": "s" * 48,
        "EXCHANGER_ADMIN_USER": "owner-7f3a", "EXCHANGER_ADMIN_PASSWORD": "a-long-unique-password"}


@pytest.mark.parametrize("change, named", [
    ({"DATABASE_URL": "postgresql://exchanger:exchanger@db:5432/exchanger"}, "DATABASE_URL"),
    ({"AMQP_URI": "pyamqp://guest:guest@mq:5672/"}, "AMQP_URI"),
    ({"EXCHANGER_ADMIN_PASSWORD": "admin"}, "EXCHANGER_ADMIN_PASSWORD"),
    ({"EXCHANGER_ADMIN_USER": "admin"}, "EXCHANGER_ADMIN_USER"),
    ({"GATEWAY_SECRET_KEY": ""}, "GATEWAY_SECRET_KEY"),
])
def test_production_refuses_each_default_and_names_it(monkeypatch, change, named):
    for key, value in dict(SAFE, EXCHANGER_ENV="production").items():
        monkeypatch.setenv(key, value)
    config.refuse_unsafe_production("test")  # all set: starts
    for key, value in change.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(config.UnsafeProduction, match=named):
        config.refuse_unsafe_production("test")
    monkeypatch.setenv("EXCHANGER_ENV", "development")
    config.refuse_unsafe_production("test")  # only production refuses


def test_production_refuses_the_defaults_when_nothing_is_set(monkeypatch):
    for key in SAFE:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("EXCHANGER_ENV", "production")
    with pytest.raises(config.UnsafeProduction) as caught:
        config.refuse_unsafe_production("orders")
    assert all(name in str(caught.value) for name in ("orders", "DATABASE_URL", "AMQP_URI", "GATEWAY_SECRET_KEY"))


@pytest.mark.parametrize("address, token, ok", [
    ("127.0.0.1:8104", "", True), ("localhost:8104", None, True), ("0.0.0.0:8104", "", False),
    ("8104", "", False), ("10.0.0.5:8104", "a-token", True), ("0.0.0.0:8104", "a-token", True)])
def test_the_reporting_csv_endpoint_needs_its_token_off_loopback(address, token, ok):
    if ok:
        reporting_domain.check_export_endpoint(address, token)
    else:
        with pytest.raises(ValueError, match="REPORTING_HTTP_TOKEN"):
            reporting_domain.check_export_endpoint(address, token)


def test_limiter_keys_from_client_input_never_carry_nul():
    from gateway.security.ratelimits import _text
    assert "\x00" not in _text("orders-email/x\x00@example.com")
