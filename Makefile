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
export EXCHANGER_ADMIN_USER ?= admin
# Where the gateway's gunicorn workers share their metrics (deploy/gunicorn.conf.py); never exported as
# PROMETHEUS_MULTIPROC_DIR to other processes (tests, services), which would switch to multiprocess mode.
GATEWAY_METRICS_DIR ?= $(CURDIR)/var/prometheus-gateway
unexport PROMETHEUS_MULTIPROC_DIR

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
	@export EXCHANGER_ADMIN_PASSWORD=$${EXCHANGER_ADMIN_PASSWORD:-$$(cat var/admin-password)}; \
	  export GATEWAY_METRICS_DIR=$(GATEWAY_METRICS_DIR); \
	  bash deploy/local/prepare.sh && \
	  echo && echo "  Exchanger:      http://127.0.0.1:$(GATEWAY_PORT)/" && \
	  echo "  API docs:       http://127.0.0.1:$(GATEWAY_PORT)/api/v1/openapi.json" && \
	  echo "  Sandbox bank:   http://127.0.0.1:$(SANDBOX_PORT)/" && \
	  echo "  Metrics:        http://127.0.0.1:$(GATEWAY_PORT)/metrics, services :9101-:9104" && \
	  echo "  Mail sent:      var/mail (local SMTP server on :8025)" && \
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
