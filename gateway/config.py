"""Gateway settings from the environment, with working local defaults."""
from libs import config


def from_env():
    public_url = config.env("PUBLIC_URL", "http://127.0.0.1:%s" % config.env("GATEWAY_PORT", "8000"))
    return {
        "AMQP_URI": config.amqp_uri(),
        "DATABASE_URL": config.database_url(),
        "RPC_TIMEOUT": config.env_float("GATEWAY_RPC_TIMEOUT", 5.0),
        "READY_SERVICES": [s for s in config.env("GATEWAY_READY_SERVICES",
                                                 "orders,notifier,payments,reporting,rates").split(",") if s],
        "TOKEN_TTL_HOURS": config.env_float("GATEWAY_TOKEN_TTL_HOURS", 8.0),
        "MAX_CONTENT_LENGTH": 64 * 1024,
        # How many reverse proxies stand in front of the gateway (0: none, clients connect directly). Only then are
        # their X-Forwarded-* headers believed (werkzeug ProxyFix); a wrong number lets clients forge addresses.
        "TRUSTED_PROXIES": config.env_int("TRUSTED_PROXIES", 0),
        "PUBLIC_URL": public_url,
        # -- staff security (gateway/security, docs/pages.md) ------------------------------------------------------
        # Cookie and CSRF signing key; without it a random key is kept in the gateway schema (local runs only).
        "SECRET_KEY": config.env("GATEWAY_SECRET_KEY") or None,
        # Secure cookies (and the __Host- prefix) whenever the public URL is https.
        "COOKIE_SECURE": config.env("GATEWAY_COOKIE_SECURE", "1" if public_url.startswith("https") else "0") == "1",
        "SESSION_IDLE_MINUTES": config.env_float("GATEWAY_SESSION_IDLE_MINUTES", 30.0),
        "SESSION_MAX_HOURS": config.env_float("GATEWAY_SESSION_MAX_HOURS", 12.0),
        "TOKEN_IDLE_MINUTES": config.env_float("GATEWAY_TOKEN_IDLE_MINUTES", 60.0),
        "PRE_AUTH_MINUTES": config.env_float("GATEWAY_PRE_AUTH_MINUTES", 5.0),
        # Roles that must enrol TOTP at first sign-in (admins always do; per-account flag for the others).
        # Operators pay out, finalize and approve withdrawals: they enrol too unless told otherwise (docs/security.md).
        "TOTP_REQUIRED_ROLES": [r for r in config.env("GATEWAY_TOTP_REQUIRED_ROLES", "admin,operator").split(",")
                                if r],
        "TOTP_ISSUER": config.env("GATEWAY_TOTP_ISSUER", "Exchanger"),
        # Sign-in lockout (gateway/security/lockout.py, docs/security.md): attempts per username and address, and
        # per username from addresses it never signed in from; each lock in a row lasts twice the one before.
        "LOCKOUT_THRESHOLD": config.env_int("GATEWAY_LOCKOUT_THRESHOLD", 5),
        "LOCKOUT_USER_THRESHOLD": config.env_int("GATEWAY_LOCKOUT_USER_THRESHOLD", 20),
        "LOCKOUT_WINDOW_MINUTES": config.env_float("GATEWAY_LOCKOUT_WINDOW_MINUTES", 15.0),
        "LOCKOUT_MINUTES": config.env_float("GATEWAY_LOCKOUT_MINUTES", 15.0),
        "LOCKOUT_MAX_MINUTES": config.env_float("GATEWAY_LOCKOUT_MAX_MINUTES", 24 * 60.0),
        # flask-limiter limits on failed sign-ins: per address and username, and per address alone (credential stuffing).
        "LOGIN_RATE_LIMIT": config.env("GATEWAY_LOGIN_RATE_LIMIT", "10 per minute"),
        "LOGIN_RATE_LIMIT_IP": config.env("GATEWAY_LOGIN_RATE_LIMIT_IP", "100 per minute"),
        # Order creation (each order mails the address typed in and may text the admin): per e-mail and per client
        # address, every attempt counted; flask-limiter notation, several limits separated by ";".
        "ORDER_RATE_LIMIT_EMAIL": config.env("GATEWAY_ORDER_RATE_LIMIT_EMAIL", "5 per minute;10 per hour"),
        "ORDER_RATE_LIMIT_IP": config.env("GATEWAY_ORDER_RATE_LIMIT_IP", "20 per minute;200 per hour"),
        "PASSWORD_CHANGE_RATE_LIMIT": config.env("GATEWAY_PASSWORD_CHANGE_RATE_LIMIT", "5 per 15 minutes"),
        "HSTS_SECONDS": config.env_int("GATEWAY_HSTS_SECONDS", 31536000),
        # Where customers pay in the demo (the sandbox bank page), linked from the order page.
        "SANDBOX_PUBLIC_URL": config.env("SANDBOX_PUBLIC_URL",
                                         "http://127.0.0.1:%s" % config.env("SANDBOX_PORT", "8090")),
        # The reporting service's internal CSV endpoint (services/reporting/config.yml WEB_SERVER_ADDRESS) and the
        # shared token it may require (REPORTING_HTTP_TOKEN on both sides).
        "REPORTING_URL": config.env("REPORTING_URL", "http://127.0.0.1:8104"),
        "REPORTING_HTTP_TOKEN": config.env("REPORTING_HTTP_TOKEN") or None,
        # How long a step-up (password or code asked again before a change that moves money) holds for one session
        # or token (gateway/security/stepup.py).
        "STEP_UP_MINUTES": config.env_float("GATEWAY_STEP_UP_MINUTES", 5.0),
        "ALERT_SWEEP_SECONDS": config.env_float("GATEWAY_ALERT_SWEEP_SECONDS", 10.0),
        # The monitors' rates file (docs/monitors.md): each worker asks orders at most this often whether it changed.
        "MONITOR_EXPORT_CHECK_SECONDS": config.env_float("MONITOR_EXPORT_CHECK_SECONDS", 0.5),
    }
