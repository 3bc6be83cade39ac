"""The whole exchanger under the chaos bench's own supervision (bench/chaos.py).

The system is prepared exactly as `make run` and tests/e2e/conftest.py prepare it (the e2e environment builder,
deploy/local/prepare.sh), but instead of honcho this module runs each process of the Procfile itself, each in its
own process group, so that one process can be SIGKILLed (with its gunicorn workers) and restarted, or restarted
with `CRASH_AT=<point>` for one life (libs/faults.py) while the others keep running. honcho would stop every
process as soon as one of them exits.

Ports come from one base (the e2e layout shifted): gateway BASE, sandbox BASE+90, SMTP BASE+25, Twilio stand-in
BASE+95, reporting HTTP BASE+104, service metrics BASE+1101..BASE+1104.
"""
import os
import signal
import subprocess
import threading
import time
import urllib.parse

import psycopg2
import psycopg2.extras
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADMIN_USER = "admin"
ADMIN_PASSWORD = "chaos-admin-password"


def ports(base):
    return {"gateway": base, "sandbox": base + 90, "smtp": base + 25, "twilio": base + 95,
            "reporting_http": base + 104, "metrics": [base + 1101 + i for i in range(4)]}


def vhost_of(amqp_uri):
    return urllib.parse.unquote(amqp_uri.rsplit("/", 1)[-1]) or "/"


def database_of(database_url):
    return urllib.parse.urlparse(database_url).path.lstrip("/")


def build_env(database_url, amqp_uri, port_base, artifacts):
    """The end-to-end environment (tests/e2e/conftest.py:system_env) on this bench's ports, database and vhost."""
    from tests.e2e.conftest import system_env
    p = ports(port_base)
    return system_env({
        "DATABASE_URL": database_url,
        "AMQP_URI": amqp_uri,
        "GATEWAY_PORT": str(p["gateway"]),
        "SANDBOX_PORT": str(p["sandbox"]),
        "ORDERS_METRICS_PORT": str(p["metrics"][0]),
        "PAYMENTS_METRICS_PORT": str(p["metrics"][1]),
        "NOTIFIER_METRICS_PORT": str(p["metrics"][2]),
        "REPORTING_METRICS_PORT": str(p["metrics"][3]),
        "REPORTING_HTTP_ADDRESS": "127.0.0.1:%d" % p["reporting_http"],
        "REPORTING_URL": "http://127.0.0.1:%d" % p["reporting_http"],
        "EXCHANGER_ADMIN_USER": ADMIN_USER,
        "EXCHANGER_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "GATEWAY_METRICS_DIR": os.path.join(ROOT, "var", "chaos-prometheus-%d" % p["gateway"]),
        "PUBLIC_URL": "http://127.0.0.1:%d" % p["gateway"],
        "GATEWAY_READY_SERVICES": "orders,notifier,payments,reporting",
        "SANDBOX_URL": "http://127.0.0.1:%d" % p["sandbox"],
        "SMTP_URL": "smtp://127.0.0.1:%d" % p["smtp"],
        "DEVSMTP_PORT": str(p["smtp"]),
        "DEVSMTP_MAILDIR": os.path.join(artifacts, "mail"),
        "TWILIO_BASE_URL": "http://127.0.0.1:%d" % p["twilio"],
        # The chaos runs are about the sandbox's flows: no chain nodes (their ports and folder are the session
        # system's, tests/e2e/conftest.py); the Procfile's `chains` process then only idles.
        "LITECOIN_ENABLED": "false",
        "EVM_ENABLED": "false",
    })


def read_procfile(path=os.path.join(ROOT, "Procfile")):
    procs = {}
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line and not line.startswith("#") and ":" in line:
                name, command = line.split(":", 1)
                procs[name.strip()] = command.strip()
    return procs


def purge_vhost(amqp_uri):
    """Leftover queues of earlier runs would hold stale messages: delete every queue of the vhost."""
    vhost = vhost_of(amqp_uri)
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name"], capture_output=True,
                         text=True, timeout=60).stdout
    names = [line.strip() for line in out.splitlines() if line.strip() and line.strip() != "name"]
    if not names:
        return
    from libs.amqp_publish import connect
    conn = connect(amqp_uri)
    try:
        ch = conn.channel()
        for name in names:
            ch.queue_delete(name)
    finally:
        conn.close()


def ensure_database_and_vhost(database_url, amqp_uri):
    """Create the database (the exchanger role may CREATEDB: deploy/local/ensure-services.sh) and the vhost
    (rabbitmqctl, as ensure-services.sh does) when missing."""
    name = database_of(database_url)
    admin_url = database_url[: database_url.rfind("/") + 1] + "postgres"
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute('CREATE DATABASE "%s"' % name.replace('"', ''))
    finally:
        conn.close()
    vhost = vhost_of(amqp_uri)
    listed = subprocess.run(["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True,
                            timeout=60, check=True).stdout.split()
    if vhost not in listed:
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True, timeout=60)
        user = urllib.parse.urlparse(amqp_uri.replace("pyamqp://", "amqp://")).username or "guest"
        subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"],
                       check=True, capture_output=True, timeout=60)


class Supervisor:
    """Runs the Procfile's processes, one process group each; restarts any that exits unless told it is down."""

    def __init__(self, env, log_dir, names=None):
        self.env = env
        self.log_dir = log_dir
        self.commands = read_procfile()
        self.names = list(names or self.commands)
        self.procs = {}            # name -> Popen
        self.extra_env = {}        # name -> env of the current life only (CRASH_AT)
        self.held_down = set()     # names stopped on purpose, not to be restarted by the watcher
        self.exits = []            # (time, name, returncode, extra_env) of exits the watcher saw
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._watcher = None
        os.makedirs(log_dir, exist_ok=True)

    def log_path(self, name):
        return os.path.join(self.log_dir, "%s.log" % name)

    def start(self, name, extra_env=None):
        with self.lock:
            env = dict(self.env)
            env.update(extra_env or {})
            self.extra_env[name] = dict(extra_env or {})
            log = open(self.log_path(name), "a")
            log.write("\n===== chaos: start %s %s at %s =====\n" % (name, extra_env or "", time.strftime("%H:%M:%S")))
            log.flush()
            self.procs[name] = subprocess.Popen(["bash", "-c", "exec " + self.commands[name]], cwd=ROOT, env=env,
                                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
            self.held_down.discard(name)

    def start_all(self):
        for name in self.names:
            self.start(name)
        self._watcher = threading.Thread(target=self._watch, name="chaos-supervisor", daemon=True)
        self._watcher.start()

    def _watch(self):
        while not self._stop.wait(0.2):
            with self.lock:
                for name, proc in list(self.procs.items()):
                    code = proc.poll()
                    if code is None or name in self.held_down:
                        continue
                    self.exits.append((time.time(), name, code, self.extra_env.get(name)))
                    # A crash point is for one life: the next life runs without it.
                    self.start(name)

    def kill(self, name, sig=signal.SIGKILL, hold=True):
        """Signal the process group (gunicorn's master and workers alike); with hold, keep it down until start."""
        with self.lock:
            if hold:
                self.held_down.add(name)
            proc = self.procs.get(name)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def restart(self, name, extra_env=None):
        self.kill(name)
        self.start(name, extra_env)

    def stop_all(self):
        self._stop.set()
        if self._watcher:
            self._watcher.join(timeout=5)
        with self.lock:
            self.held_down.update(self.procs)
            procs = list(self.procs.values())
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 20
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def log_tails(self, lines=150):
        tails = {}
        for name in self.names:
            try:
                with open(self.log_path(name), errors="replace") as fh:
                    tails[name] = "".join(fh.readlines()[-lines:])
            except OSError:
                tails[name] = ""
        return tails


class ChaosSystem:
    """The running system: HTTP helpers for the customer, the operator (TOTP sign-in) and the sandbox; SQL."""

    def __init__(self, env, supervisor):
        self.env = env
        self.supervisor = supervisor
        self.database_url = env["DATABASE_URL"]
        self.amqp_uri = env["AMQP_URI"]
        self.url = "http://127.0.0.1:%s" % env["GATEWAY_PORT"]
        self.sandbox_url = "http://127.0.0.1:%s" % env["SANDBOX_PORT"]
        self._staff = None

    # -- SQL (a fresh connection per call: backends are terminated on purpose) --------------------------------
    def sql(self, query, params=None, attempts=20):
        for attempt in range(attempts):
            try:
                conn = psycopg2.connect(self.database_url, application_name="chaos-bench")
            except psycopg2.OperationalError:
                time.sleep(0.2)
                continue
            try:
                with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    cur.execute(query, params)
                    return cur.fetchall() if cur.description else cur.rowcount
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2)
            finally:
                conn.close()
        raise RuntimeError("database unreachable")

    # -- HTTP ---------------------------------------------------------------------------------------------------
    def api(self, method, path, token=None, timeout=10, **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = "Bearer " + token
        return requests.request(method, self.url + path, headers=headers, timeout=timeout, **kwargs)

    def sandbox(self, method, path, timeout=10, **kwargs):
        return requests.request(method, self.sandbox_url + path, timeout=timeout, **kwargs)

    def admin_token(self):
        """The admin's bearer token, enrolling TOTP at the first sign-in (the e2e helper's steps)."""
        if self._staff is None:
            from tests.e2e import conftest as e2e
            staff = e2e.System(self.env, None, None)
            staff.url = self.url
            staff.http = requests.Session()
            self._staff = staff
        deadline = time.monotonic() + 90
        while True:
            try:
                return self._staff.login(ADMIN_USER, ADMIN_PASSWORD)
            except (AssertionError, requests.RequestException):
                # A service still starting, or no database connection left for a moment (a shared server).
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def sensitive(self, method, path, token=None, **kwargs):
        """A change that moves money: step up on the admin's token first (docs/security.md), then the call."""
        self.admin_token()
        return self._staff.sensitive(method, path, token=token, **kwargs)

    def ready(self):
        try:
            return requests.get(self.url + "/readyz", timeout=3).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return True
            time.sleep(0.5)
        raise RuntimeError("the system did not become ready within %ss" % timeout)


def start_system(database_url, amqp_uri, port_base, artifacts):
    """Reset the database and vhost, prepare as `make run` does, start every process; returns ChaosSystem."""
    from tests.conftest import reset_database
    os.makedirs(artifacts, exist_ok=True)
    ensure_database_and_vhost(database_url, amqp_uri)
    env = build_env(database_url, amqp_uri, port_base, artifacts)
    reset_database(database_url)
    purge_vhost(amqp_uri)
    subprocess.run(["bash", "deploy/local/prepare.sh"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    supervisor = Supervisor(env, os.path.join(artifacts, "logs"))
    for name in supervisor.names:   # logs of this start only
        open(supervisor.log_path(name), "w").close()
    supervisor.start_all()
    system = ChaosSystem(env, supervisor)
    try:
        system.wait_ready()
    except Exception:
        supervisor.stop_all()
        raise
    return system
