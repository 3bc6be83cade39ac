#!/usr/bin/env bash
# Make sure PostgreSQL and RabbitMQ run on this machine, installing them from Debian's packages when missing,
# and that the exchanger's database role and databases exist. Used by `make run` and `.ci/run`.
# Idempotent: on a machine where both already run it only checks and creates what is missing.
set -euo pipefail

PGHOST=${PGHOST:-127.0.0.1}
DB_USER=${EXCHANGER_DB_USER:-exchanger}
DB_PASSWORD=${EXCHANGER_DB_PASSWORD:-exchanger}
DATABASES=${EXCHANGER_DATABASES:-"exchanger exchanger_test"}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- PostgreSQL ------------------------------------------------------------------------------------------
if ! port_open 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "installing PostgreSQL..."; apt_install postgresql
  fi
  echo "starting PostgreSQL..."
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  for _ in $(seq 1 30); do port_open 5432 && break; sleep 1; done
fi
port_open 5432 || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }

psql_admin() {
  # Debian's stock cluster trusts the postgres OS user on the socket; this machine also trusts TCP.
  if psql -U postgres -h "$PGHOST" -tAc 'select 1' >/dev/null 2>&1; then
    psql -U postgres -h "$PGHOST" -v ON_ERROR_STOP=1 -tAc "$1"
  else
    as_root runuser -u postgres -- psql -v ON_ERROR_STOP=1 -tAc "$1"
  fi
}
if [ "$(psql_admin "select 1 from pg_roles where rolname='$DB_USER'")" != 1 ]; then
  psql_admin "create role $DB_USER login password '$DB_PASSWORD' createdb" >/dev/null
fi
for db in $DATABASES; do
  if [ "$(psql_admin "select 1 from pg_database where datname='$db'")" != 1 ]; then
    psql_admin "create database $db owner $DB_USER" >/dev/null
  fi
done
# The suite runs a system of six services (each with its pool), and the short chaos run starts a second one
# beside it: close to 100 connections at the peak, Debian's default max_connections. A local cluster below 300
# is raised once (a restart: only here, where this script may start the server anyway).
if [ "$(psql_admin "show max_connections")" -lt 300 ] && ls /etc/postgresql/*/main >/dev/null 2>&1; then
  echo "raising PostgreSQL's max_connections to 300 (restart)..."
  psql_admin "alter system set max_connections = 300" >/dev/null
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main restart
  for _ in $(seq 1 30); do port_open 5432 && psql_admin "select 1" >/dev/null 2>&1 && break; sleep 1; done
fi

# --- RabbitMQ --------------------------------------------------------------------------------------------
if ! port_open 5672; then
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    echo "installing RabbitMQ..."; apt_install rabbitmq-server
  fi
  echo "starting RabbitMQ..."
  as_root rabbitmq-server -detached || true
  for _ in $(seq 1 60); do port_open 5672 && break; sleep 1; done
fi
port_open 5672 || { echo "RabbitMQ is not reachable on 127.0.0.1:5672" >&2; exit 1; }
echo "PostgreSQL and RabbitMQ are up."

# A separate RabbitMQ virtual host for the test suite, so tests never take messages of a running `make run`.
if command -v rabbitmqctl >/dev/null 2>&1; then
  for vhost in ${EXCHANGER_VHOSTS:-exchanger_test}; do
    if ! as_root rabbitmqctl -q list_vhosts 2>/dev/null | grep -qx "$vhost"; then
      as_root rabbitmqctl -q add_vhost "$vhost" >/dev/null
      as_root rabbitmqctl -q set_permissions -p "$vhost" guest ".*" ".*" ".*" >/dev/null
    fi
  done
fi

# --- Local chains (docs/chains.md) -----------------------------------------------------------------------
# Litecoin Core from Debian's packages (run as the real binary /usr/lib/litecoin/litecoind with its own -datadir by
# `python -m devchains`); anvil and solc from the npm registry, installed into deploy/local/node from its lock file.
if [ ! -x /usr/lib/litecoin/litecoind ]; then
  echo "installing litecoind..."; apt_install litecoind
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "installing node and npm..."; apt_install nodejs npm
fi
NODE_DIR="$(dirname "$0")/node"
if [ ! -x "$NODE_DIR/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil" ] || [ ! -d "$NODE_DIR/node_modules/solc" ]; then
  echo "installing anvil and solc (npm)..."
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
echo "litecoind, anvil and solc are installed."
