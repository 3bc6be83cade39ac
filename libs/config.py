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
