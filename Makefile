# Two commands: `make run` (the whole exchanger on this machine) and `make test` (the whole suite).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

# Local defaults (override in the environment). Secrets for real systems come only from the environment.
export DATABASE_URL ?= postgresql://exchanger:exchanger@127.0.0.1:5432/exchanger
export AMQP_URI ?= pyamqp://guest:guest@127.0.0.1:5672/
export GATEWAY_PORT ?= 8000
export SANDBOX_PORT ?= 8090
# Where the gateway's gunicorn workers share their metrics (deploy/gunicorn.conf.py); never exported as
# PROMETHEUS_MULTIPROC_DIR to other processes (tests, services), which would switch to multiprocess mode.
GATEWAY_METRICS_DIR ?= $(CURDIR)/var/prometheus-gateway
unexport PROMETHEUS_MULTIPROC_DIR

# Local chains (docs/chains.md): a Litecoin regtest node and anvil (EVM, the demo USDT) run by the Procfile's
# `chains` process. The RPC password
# is generated at the first `make run` into var/chains-secrets (kept out of the repository). Only `make run` turns
# the rails on (LITECOIN_ENABLED, EVM_ENABLED); the end-to-end tests start their own node (tests/e2e/conftest.py).
export LITECOIN_RPC_PORT ?= 19443
export LITECOIN_P2P_PORT ?= 19444
export LITECOIN_RPC_USER ?= exchanger
export CHAINS_DIR ?= $(CURDIR)/var/chains
export EVM_RPC_PORT ?= 8545
export EVM_KEYS_FILE ?= $(CURDIR)/var/chains/evm/evm-keys.json
export EVM_TOKEN_FILE ?= $(CURDIR)/var/chains/evm/token-address
export CHAINS_MINE_SECONDS ?= 5

TEST_DATABASE_URL ?= postgresql://exchanger:exchanger@127.0.0.1:5432/exchanger_test
TEST_AMQP_URI ?= pyamqp://guest:guest@127.0.0.1:5672/exchanger_test
PYTEST ?= $(PY) -m pytest -p no:cacheprovider

.PHONY: run test install services migrate unit interface e2e bench clean browser-deps

$(STAMP): requirements.txt constraints.txt
	@command -v python3 >/dev/null || { echo "python3 is required"; exit 1; }
	@test -x $(PY) || python3 -m venv $(VENV) || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv $(VENV); }
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt -c constraints.txt
	@touch $(STAMP)

install: $(STAMP)

# axe-core for the browser tests' accessibility pass (tests/e2e/browser/package.json, pinned in its lock file).
BROWSER_DEPS := tests/e2e/browser/node_modules/axe-core/axe.min.js
$(BROWSER_DEPS): tests/e2e/browser/package.json tests/e2e/browser/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq npm; }
	cd tests/e2e/browser && npm ci --no-audit --no-fund --silent
	@touch $(BROWSER_DEPS)

browser-deps: $(BROWSER_DEPS)

services:
	@bash deploy/local/ensure-services.sh

migrate: install services
	$(PY) -m libs.migrate

run: install services
	@mkdir -p var
	@if [ -z "$$EXCHANGER_ADMIN_PASSWORD" ]; then \
	  test -s var/admin-password || $(PY) -c "import secrets; print(secrets.token_urlsafe(12))" > var/admin-password; \
	fi
	@# The first admin's name is not guessable either (not "admin"): generated once, kept in var/admin-user.
	@if [ -z "$$EXCHANGER_ADMIN_USER" ]; then \
	  test -s var/admin-user || $(PY) -c "import secrets; print('admin-' + secrets.token_hex(3))" > var/admin-user; \
	fi
	@if [ -z "$$LITECOIN_RPC_PASSWORD" ]; then \
	  test -s var/chains-secrets || $(PY) -c "import secrets; print(secrets.token_urlsafe(18))" > var/chains-secrets; \
	fi
	@export EXCHANGER_ADMIN_PASSWORD=$${EXCHANGER_ADMIN_PASSWORD:-$$(cat var/admin-password)}; \
	  export EXCHANGER_ADMIN_USER=$${EXCHANGER_ADMIN_USER:-$$(cat var/admin-user)}; \
	  export LITECOIN_RPC_PASSWORD=$${LITECOIN_RPC_PASSWORD:-$$(cat var/chains-secrets)}; \
	  export LITECOIN_ENABLED=$${LITECOIN_ENABLED:-true} EVM_ENABLED=$${EVM_ENABLED:-true}; \
	  export GATEWAY_METRICS_DIR=$(GATEWAY_METRICS_DIR); \
	  bash deploy/local/prepare.sh && \
	  echo && echo "  Exchanger:      http://127.0.0.1:$(GATEWAY_PORT)/" && \
	  echo "  API docs:       http://127.0.0.1:$(GATEWAY_PORT)/api/v1/openapi.json" && \
	  echo "  Sandbox bank:   http://127.0.0.1:$(SANDBOX_PORT)/" && \
	  echo "  Metrics:        http://127.0.0.1:$(GATEWAY_PORT)/metrics, services :9101-:9105" && \
	  echo "  Rate sources:   http://127.0.0.1:$${RATES_STANDIN_PORT:-8095}/_control (stand-in, recorded files)" && \
	  echo "  Mail sent:      var/mail (local SMTP server on :8025)" && \
	  echo "  Litecoin:       regtest node on :$(LITECOIN_RPC_PORT), data and wallets in $(CHAINS_DIR)/litecoin, RPC password in var/chains-secrets" && \
	  echo "  EVM (USDT):     anvil on :$(EVM_RPC_PORT), state in $(CHAINS_DIR)/evm, keys (made at first start) in $(EVM_KEYS_FILE)" && \
	  echo "  Pay an order:   python -m devchains.send LTC|USDTERC20 <deposit address> <amount>" && \
	  echo "  Admin sign-in:  $$EXCHANGER_ADMIN_USER / $$EXCHANGER_ADMIN_PASSWORD" && echo && \
	  exec honcho start -f Procfile

# The suite runs against real PostgreSQL and RabbitMQ (its own database and virtual host).
# Three pytest runs: unit and interface tests use eventlet (nameko), end-to-end tests drive real processes.
test: install services browser-deps
	@export DATABASE_URL=$(TEST_DATABASE_URL) AMQP_URI=$(TEST_AMQP_URI); \
	  set -e; \
	  $(PYTEST) tests/unit; \
	  $(PYTEST) tests/interface; \
	  $(PYTEST) tests/e2e

unit: install
	DATABASE_URL=$(TEST_DATABASE_URL) AMQP_URI=$(TEST_AMQP_URI) $(PYTEST) tests/unit

interface: install services
	DATABASE_URL=$(TEST_DATABASE_URL) AMQP_URI=$(TEST_AMQP_URI) $(PYTEST) tests/interface

e2e: install services browser-deps
	DATABASE_URL=$(TEST_DATABASE_URL) AMQP_URI=$(TEST_AMQP_URI) $(PYTEST) tests/e2e

# Against a running `make run` (each prints one JSON line last).
bench: install
	$(PY) bench/orders.py
	$(PY) bench/payments.py
	$(PY) bench/notifier.py
	$(PY) bench/export.py

clean:
	rm -rf $(VENV) var
