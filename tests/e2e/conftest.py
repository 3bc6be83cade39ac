"""End-to-end: the whole system started as `make run` starts it (deploy/local/prepare.sh, then honcho with the
Procfile), on test ports, the test database and the test RabbitMQ virtual host; driven over HTTP only."""
import os
import signal
import subprocess
import time

import psycopg2
import psycopg2.extras
import pytest
import requests

from tests.conftest import ARTIFACTS, ROOT, TEST_AMQP_URI, TEST_DATABASE_URL, eventually, reset_database

GATEWAY_PORT = int(os.environ.get("E2E_GATEWAY_PORT", "18000"))
SANDBOX_PORT = int(os.environ.get("E2E_SANDBOX_PORT", "18090"))
ADMIN_USER = "admin"
ADMIN_PASSWORD = "e2e-admin-password"


def _purge_test_vhost():
    """Leftover queues of earlier runs would hold stale messages: delete every queue of the test vhost."""
    vhost = TEST_AMQP_URI.rsplit("/", 1)[-1] or "/"
    try:
        out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name"], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return
    names = [line.strip() for line in out.splitlines() if line.strip() and line.strip() != "name"]
    if not names:
        return
    from libs.amqp_publish import connect
    conn = connect(TEST_AMQP_URI)
    try:
        ch = conn.channel()
        for name in names:
            ch.queue_delete(name)
    finally:
        conn.close()


class System:
    def __init__(self, env, proc, log_path):
        self.env = env
        self.proc = proc
        self.log_path = log_path
        self.url = "http://127.0.0.1:%d" % GATEWAY_PORT
        self.sandbox_url = "http://127.0.0.1:%d" % SANDBOX_PORT
        self.http = requests.Session()

    def api(self, method, path, token=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = "Bearer " + token
        return self.http.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def login(self, username=ADMIN_USER, password=ADMIN_PASSWORD):
        response = self.api("POST", "/api/v1/auth/token", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return response.json()["token"]

    def sql(self, query, params=None):
        conn = psycopg2.connect(TEST_DATABASE_URL)
        try:
            with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else cur.rowcount
        finally:
            conn.close()

    def log_tail(self, lines=80):
        with open(self.log_path) as fh:
            return "".join(fh.readlines()[-lines:])


def system_env(extra=None):
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": ROOT,
        "PATH": os.path.join(ROOT, ".venv", "bin") + os.pathsep + env.get("PATH", ""),
        "DATABASE_URL": TEST_DATABASE_URL,
        "AMQP_URI": TEST_AMQP_URI,
        "GATEWAY_PORT": str(GATEWAY_PORT),
        "SANDBOX_PORT": str(SANDBOX_PORT),
        "ORDERS_METRICS_PORT": "19101",
        "PAYMENTS_METRICS_PORT": "19102",
        "NOTIFIER_METRICS_PORT": "19103",
        "REPORTING_METRICS_PORT": "19104",
        "EXCHANGER_ADMIN_USER": ADMIN_USER,
        "EXCHANGER_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "EXPIRY_SWEEP_SECONDS": "1",
        "PROMETHEUS_MULTIPROC_DIR": os.path.join(ROOT, "var", "e2e-prometheus"),
        "PUBLIC_URL": "http://127.0.0.1:%d" % GATEWAY_PORT,
        "GATEWAY_READY_SERVICES": os.environ.get("E2E_READY_SERVICES", "orders"),
    })
    env.update(extra or {})
    return env


@pytest.fixture(scope="session")
def system():
    os.makedirs(ARTIFACTS, exist_ok=True)
    env = system_env()
    reset_database(TEST_DATABASE_URL)
    _purge_test_vhost()
    subprocess.run(["bash", "deploy/local/prepare.sh"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    log_path = os.path.join(ARTIFACTS, "e2e-system.log")
    log = open(log_path, "w")
    proc = subprocess.Popen(["honcho", "start", "-f", "Procfile"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    sys_ = System(env, proc, log_path)

    def ready():
        assert proc.poll() is None, "honcho exited:\n" + sys_.log_tail()
        try:
            return requests.get(sys_.url + "/readyz", timeout=3).status_code == 200
        except requests.RequestException:
            return False
    try:
        eventually(ready, timeout=90, interval=0.5, message="system ready")
        yield sys_
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()


@pytest.fixture(scope="session")
def admin_token(system):
    return system.login()


@pytest.fixture(scope="session")
def directions(system):
    response = system.api("GET", "/api/v1/directions")
    assert response.status_code == 200
    first = {}
    for direction in response.json():
        first.setdefault(direction["exchange_type"], direction)
    return first
