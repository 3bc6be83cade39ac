"""The payments service's configuration as `nameko run` loads it (services/payments/config.yml)."""
import os

import pytest
import yaml
from nameko.cli.main import setup_yaml_parser

from services.payments.dependencies import build_adapters

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def load_config():
    setup_yaml_parser()  # what `nameko run` does: ${VAR:default} filled from the environment
    with open(os.path.join(ROOT, "services", "payments", "config.yml")) as f:
        return yaml.safe_load(f)


@pytest.fixture
def sandbox_env(monkeypatch):
    for name in ("SANDBOX_URL", "SANDBOX_PORT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_sandbox_port_alone_moves_the_payments_adapter(sandbox_env):
    """make run with SANDBOX_PORT=18123 starts the sandbox there: payments must poll and pay there too."""
    sandbox_env.setenv("SANDBOX_PORT", "18123")
    adapters = build_adapters(load_config())
    assert adapters["sandbox"].url == "http://127.0.0.1:18123"


def test_sandbox_url_wins_over_sandbox_port(sandbox_env):
    sandbox_env.setenv("SANDBOX_PORT", "18123")
    sandbox_env.setenv("SANDBOX_URL", "http://sandbox:8090")
    assert build_adapters(load_config())["sandbox"].url == "http://sandbox:8090"


def test_sandbox_default_is_port_8090(sandbox_env):
    assert build_adapters(load_config())["sandbox"].url == "http://127.0.0.1:8090"
