#!/usr/bin/env bash
# Bring the database and broker to what the processes expect: migrations, queues, demo data, first admin.
# Used by `make run` and by the end-to-end tests before they start the Procfile.
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m libs.migrate
python -m libs.topology
python -m services.orders.seed
# demo formulas over the rates stand-in for the seeded directions (RATES_DEMO_FORMULAS=0 leaves them hand-set)
python -m services.rates.demo
if [ -d sandbox/migrations ] && [ -f sandbox/seed.py ]; then python -m sandbox.seed; fi
python -m gateway.cli ensure-admin
