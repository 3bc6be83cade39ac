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

# Every port of the system under test derives from one base, so two checkouts can run their suites side by side.
PORT_BASE = int(os.environ.get("E2E_PORT_BASE", "18000"))
GATEWAY_PORT = int(os.environ.get("E2E_GATEWAY_PORT", str(PORT_BASE)))
SANDBOX_PORT = int(os.environ.get("E2E_SANDBOX_PORT", str(PORT_BASE + 90)))
SMTP_PORT = PORT_BASE + 25
TWILIO_PORT = PORT_BASE + 95
REPORTING_PORT = PORT_BASE + 104
RATES_STANDIN_PORT = PORT_BASE + 97
ORDERS_METRICS_PORT = PORT_BASE + 1101
LITECOIN_RPC_PORT = PORT_BASE + 300
EVM_RPC_PORT = PORT_BASE + 310
CHAINS_DIR = os.path.join(ROOT, "var", "e2e-chains")
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
        self.totp_secrets = {}   # username -> TOTP secret of accounts enrolled through login()
        self._last_step = {}     # username -> last TOTP step handed out
        self._tokens = {}        # (username, password) -> bearer token

    def api(self, method, path, token=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = "Bearer " + token
        return self.http.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def login(self, username=ADMIN_USER, password=ADMIN_PASSWORD):
        """A bearer token for a staff member (the admin by default), completing the TOTP steps (docs/pages.md,
        "Staff security").

        Staff who must have a second factor (every admin) enrol at their first sign-in: the secret is kept in
        `self.totp_secrets` and codes come from `totp_code()` (pyotp). A TOTP step is accepted once per account,
        so tokens are cached per account and reused while still valid; browser tests take their codes from
        `totp_code()` too, so the helper and the pages never offer the same step twice."""
        cached = self._tokens.get((username, password))
        if cached and self.api("GET", "/api/v1/auth/me", token=cached).status_code == 200:
            return cached
        body = {"username": username, "password": password}
        if username in self.totp_secrets:
            body["code"] = self.totp_code(username)
        response = self.api("POST", "/api/v1/auth/token", json=body)
        assert response.status_code == 200, response.text
        data = response.json()
        token = data["token"]
        if data.get("enrolment_required"):
            started = self.api("POST", "/api/v1/auth/totp", token=token, json={})
            assert started.status_code == 200, started.text
            self.totp_secrets[username] = started.json()["secret"]
            confirmed = self.api("POST", "/api/v1/auth/totp/confirm", token=token,
                                 json={"code": self.totp_code(username)})
            assert confirmed.status_code == 200, confirmed.text
        self._tokens[(username, password)] = token
        return token

    def step_up(self, token=None, username=ADMIN_USER, password=ADMIN_PASSWORD):
        """Confirm the password again on a token (docs/security.md, "Step-up and alerts"): a change that moves money
        answers 401 `step_up_required` without it; it holds a few minutes. Returns the token."""
        token = token or self.login(username, password)
        for (name, secret), cached in self._tokens.items():
            if cached == token:
                username, password = name, secret
        response = self.api("POST", "/api/v1/auth/step-up", token=token, json={"password": password})
        assert response.status_code == 200, response.text
        return token

    def sensitive(self, method, path, token=None, **kwargs):
        """A change that moves money, made the way an admin client makes it: step up, then the call."""
        return self.api(method, path, token=self.step_up(token), **kwargs)

    def totp_code(self, username=ADMIN_USER):
        """The TOTP code of the earliest step this helper has not used yet (the gateway accepts the current step
        and one either side, each once); waits for the clock only when both are used up."""
        import pyotp
        totp = pyotp.TOTP(self.totp_secrets[username])
        while True:
            now_step = int(time.time()) // totp.interval
            for step in (now_step, now_step + 1):
                if step > self._last_step.get(username, 0):
                    self._last_step[username] = step
                    return totp.generate_otp(step)
            time.sleep(totp.interval - time.time() % totp.interval + 0.05)

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
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)   # only the gateway's workers share metrics files (GATEWAY_METRICS_DIR)
    env.update({
        "PYTHONPATH": ROOT,
        "PATH": os.path.join(ROOT, ".venv", "bin") + os.pathsep + env.get("PATH", ""),
        "DATABASE_URL": TEST_DATABASE_URL,
        "AMQP_URI": TEST_AMQP_URI,
        "GATEWAY_PORT": str(GATEWAY_PORT),
        "SANDBOX_PORT": str(SANDBOX_PORT),
        "ORDERS_METRICS_PORT": str(ORDERS_METRICS_PORT),
        "PAYMENTS_METRICS_PORT": str(ORDERS_METRICS_PORT + 1),
        "NOTIFIER_METRICS_PORT": str(ORDERS_METRICS_PORT + 2),
        "REPORTING_METRICS_PORT": str(ORDERS_METRICS_PORT + 3),
        "RATES_METRICS_PORT": str(ORDERS_METRICS_PORT + 4),
        "REPORTING_HTTP_ADDRESS": "127.0.0.1:%d" % REPORTING_PORT,
        "REPORTING_URL": "http://127.0.0.1:%d" % REPORTING_PORT,
        "EXCHANGER_ADMIN_USER": ADMIN_USER,
        "EXCHANGER_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "EXPIRY_SWEEP_SECONDS": "1",
        "GATEWAY_METRICS_DIR": os.path.join(ROOT, "var", "e2e-prometheus"),
        "PUBLIC_URL": "http://127.0.0.1:%d" % GATEWAY_PORT,
        "GATEWAY_READY_SERVICES": os.environ.get("E2E_READY_SERVICES", "orders,notifier,payments,reporting,rates"),
        # payments: poll the test sandbox often; settle payouts in doubt quickly (tests/e2e/test_payments_*.py)
        "SANDBOX_URL": "http://127.0.0.1:%d" % SANDBOX_PORT,
        "SANDBOX_TIMEOUT_SECONDS": "2",
        "PAYMENTS_POLL_SECONDS": "0.5",
        "PAYMENTS_RECONCILE_SECONDS": "0.5",
        "PAYMENTS_RECONCILE_AFTER_SECONDS": "1",
        "PAYMENTS_BALANCE_REFRESH_SECONDS": "5",
        # chains (docs/chains.md): a fresh Litecoin regtest node of the suite's own; blocks only when a test mines
        "LITECOIN_ENABLED": "true",
        "LITECOIN_RPC_PORT": str(LITECOIN_RPC_PORT),
        "LITECOIN_P2P_PORT": str(LITECOIN_RPC_PORT + 1),
        "LITECOIN_RPC_USER": "e2e",
        "LITECOIN_RPC_PASSWORD": "e2e-litecoin-rpc",
        "LITECOIN_RPC_TIMEOUT_SECONDS": "1",
        "LITECOIN_CONFIRMATIONS": "3",
        "EVM_ENABLED": "true",
        "EVM_RPC_PORT": str(EVM_RPC_PORT),
        "EVM_KEYS_FILE": os.path.join(CHAINS_DIR, "evm", "evm-keys.json"),
        "EVM_TOKEN_FILE": os.path.join(CHAINS_DIR, "evm", "token-address"),
        "EVM_RPC_TIMEOUT_SECONDS": "1",
        "EVM_CONFIRMATIONS": "3",
        "CHAINS_DIR": CHAINS_DIR,
        "CHAINS_RESET": "1",
        "CHAINS_MINE_SECONDS": "0",
        # notifier: the dev SMTP server of the Procfile on a test port, mail kept in a folder the tests read;
        # Twilio configured against the stand-in the notifier tests start (tests/interface/notifier/)
        "SMTP_URL": "smtp://127.0.0.1:%d" % SMTP_PORT,
        "DEVSMTP_PORT": str(SMTP_PORT),
        "DEVSMTP_MAILDIR": os.path.join(ARTIFACTS, "e2e-mail"),
        "DEVSMTP_CLEAR": "1",
        "TWILIO_ACCOUNT_SID": "AC" + "e2e0" * 8,
        "TWILIO_AUTH_TOKEN": "e2e-twilio-auth-token",
        "TWILIO_FROM": "+15005550006",
        "TWILIO_BASE_URL": "http://127.0.0.1:%d" % TWILIO_PORT,
        "TWILIO_TIMEOUT": "1",
        "NOTIFIER_RETRY_BASE_SECONDS": "0.3",
        "NOTIFIER_RETRY_CAP_SECONDS": "1",
        "NOTIFIER_SMS_MAX_ATTEMPTS": "3",
        "NOTIFIER_IDLE_WAIT": "0.2",
        # rates: the stand-in of the Procfile on a test port; the fast sources poll every second and go stale
        # after 4 s without an answer (tests/e2e/test_rates.py)
        "RATES_STANDIN_PORT": str(RATES_STANDIN_PORT),
        "RATES_CBR_URL": "http://127.0.0.1:%d/cbr/XML_daily.asp" % RATES_STANDIN_PORT,
        "RATES_ECB_URL": "http://127.0.0.1:%d/ecb/eurofxref-daily.xml" % RATES_STANDIN_PORT,
        "RATES_BINANCE_URL": "http://127.0.0.1:%d/binance/api/v3/ticker/bookTicker" % RATES_STANDIN_PORT,
        "RATES_BINANCE_PRICE_URL": "http://127.0.0.1:%d/binance/api/v3/ticker/price" % RATES_STANDIN_PORT,
        "RATES_OTHER_URL": "http://127.0.0.1:%d/other/rates.xml" % RATES_STANDIN_PORT,
        "RATES_TICK_SECONDS": "0.5",
        # the seeded directions keep their hand-set rates: the other tests compute amounts from them
        "RATES_DEMO_FORMULAS": "0",
        "RATES_BINANCE_POLL_SECONDS": "1",
        "RATES_BINANCE_TIMEOUT_SECONDS": "1",
        "RATES_BINANCE_MAX_AGE_SECONDS": "4",
        # customer accounts: the fuzzer and the tests share one address, so the per-address limit is higher here
        "ACCOUNT_RATE_LIMIT_IP": "600 per minute",
        # every e2e client shares 127.0.0.1 and the fuzzer sends empty e-mails: the per (address, e-mail) limit
        # of account endpoints would turn later tests away
        "ACCOUNT_RATE_LIMIT": "600 per minute",
        # the first delay after the free sign-in failures: long enough that parallel attempts of a test all meet
        # the block on a busy machine (tests/e2e/test_account_security.py)
        "ACCOUNT_SIGNIN_DELAY_SECONDS": "30",
        # Throttles (docs/security.md): the suite's clients share 127.0.0.1, so the per-address order limit is
        # out of the way; the per-e-mail limit and the letter cap stay real (tests use their own addresses;
        # tests/e2e/test_security_throttles.py drives them). One reverse proxy is trusted, so tests can play
        # clients at other addresses with X-Forwarded-For.
        "GATEWAY_ORDER_RATE_LIMIT_IP": "100000 per minute",
        "GATEWAY_ORDER_RATE_LIMIT_EMAIL": "20 per minute",
        "NOTIFIER_LETTERS_PER_RECIPIENT_HOUR": "10",
        "NOTIFIER_ADMIN_SMS_PER_WINDOW": "100000",
        "TRUSTED_PROXIES": "1",
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
