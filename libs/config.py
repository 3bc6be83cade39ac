"""Environment configuration with working local defaults, so `make run` works with no settings at all.

Only this module and each service's config.yml read the environment, so a newcomer finds every knob here.
"""
import os

DEFAULT_AMQP_URI = "pyamqp://guest:guest@127.0.0.1:5672/"
DEFAULT_DATABASE_URL = "postgresql://exchanger:exchanger@127.0.0.1:5432/exchanger"


def amqp_uri():
    return os.environ.get("AMQP_URI", DEFAULT_AMQP_URI)


def database_url():
    return os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)


def env(name, default=None):
    return os.environ.get(name, default)


def env_int(name, default):
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_float(name, default):
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


# -- production guard (docs/security.md, "Behind a proxy and in production") ----------------------------------------
# Credentials that ship with the project (Makefile, docker-compose.yml, the broker's own default): fine on a laptop,
# never in production.
DEFAULT_SECRETS = frozenset({"", "exchanger", "guest", "admin", "password", "changeme", "secret"})
GUESSABLE_ADMIN_NAMES = frozenset({"admin", "administrator", "root"})


class UnsafeProduction(RuntimeError):
    """EXCHANGER_ENV=production with a default credential or secret: the process must not start."""


def is_production():
    return (os.environ.get("EXCHANGER_ENV") or "").strip().lower() == "production"


def production_problems(database=None, amqp=None):
    """What keeps this environment from running as production, one sentence each (empty: nothing)."""
    from urllib.parse import unquote, urlsplit  # noqa: PLC0415 - only the guard needs it
    problems = []
    db = urlsplit(database or database_url())
    if unquote(db.password or "") in DEFAULT_SECRETS:
        problems.append("DATABASE_URL has the default or an empty password")
    broker = urlsplit(amqp or amqp_uri())
    if unquote(broker.password or "") in DEFAULT_SECRETS or unquote(broker.username or "") == "guest":
        problems.append("AMQP_URI has the default broker credentials (guest or an empty/default password)")
    admin_password = os.environ.get("EXCHANGER_ADMIN_PASSWORD")
    if admin_password is not None and admin_password in DEFAULT_SECRETS:
        problems.append("EXCHANGER_ADMIN_PASSWORD is a default password")
    if (os.environ.get("EXCHANGER_ADMIN_USER") or "").strip().lower() in GUESSABLE_ADMIN_NAMES:
        problems.append("EXCHANGER_ADMIN_USER is a guessable name (%s)" % os.environ["EXCHANGER_ADMIN_USER"])
    if not (os.environ.get("GATEWAY_SECRET_KEY") or "").strip():
        problems.append("GATEWAY_SECRET_KEY is empty (cookies and CSRF tokens need a key from the environment)")
    return problems


def refuse_unsafe_production(process, database=None, amqp=None):
    """With EXCHANGER_ENV=production, raise UnsafeProduction naming every default still in place."""
    if not is_production():
        return
    problems = production_problems(database, amqp)
    if problems:
        raise UnsafeProduction("%s refuses to start with EXCHANGER_ENV=production: %s" % (process, "; ".join(problems)))
