"""Fixtures for the notifier's interface tests: the notifier in a real nameko container against the real
PostgreSQL and RabbitMQ (test database and vhost), the real aiosmtpd dev server in its own process (so it can be
stopped and started like a real outage), and the Twilio stand-in. Order events are published the way the orders
outbox relay publishes them (exchange `orders.events`, routing key = event type, JSON envelope).

Tests share the database, so each one uses its own recipients (uuid e-mail addresses and phone numbers) and
asserts on those only.
"""
import email
import email.policy
import json
import mailbox
import os
import signal
import socket
import subprocess
import sys
import uuid

import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from libs.amqp_publish import ConfirmingPublisher
from libs.db import Database
from services.notifier.service import NotifierService
from tests.conftest import ROOT, TEST_AMQP_URI, eventually
from tests.interface.notifier.twilio_standin import TwilioStandin

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "interface-test-auth-token"
TWILIO_FROM = "+15005550006"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevSmtp:
    """services/notifier/devsmtp.py in a child process; `stop()`/`start()` cut and restore the service."""

    def __init__(self, maildir):
        self.maildir = str(maildir)
        self.port = free_port()
        self.url = "smtp://127.0.0.1:%d" % self.port
        self.log = open(os.path.join(self.maildir + "-log.txt"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.notifier.devsmtp", "--port", str(self.port), "--maildir",
             self.maildir], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stdout=self.log,
            stderr=subprocess.STDOUT)
        eventually(self.listening, timeout=15, message="dev SMTP server up")

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self):
        self.proc.send_signal(signal.SIGUSR1)
        eventually(lambda: not self.listening(), timeout=10, message="dev SMTP server stopped")

    def start(self):
        self.proc.send_signal(signal.SIGUSR2)
        eventually(self.listening, timeout=10, message="dev SMTP server back")

    def letters(self, to=None, order_id=None):
        """Letters received for `to`; with order_id only those about that order (the admin address also gets
        letters for orders other tests' events create)."""
        box = mailbox.Maildir(self.maildir, factory=None, create=False)
        out = []
        for key in box.iterkeys():
            with box.get_file(key) as fh:
                msg = email.message_from_binary_file(fh, policy=email.policy.default)
            if (to is None or msg["To"] == to) and (order_id is None or msg["X-Exchanger-Order"] == str(order_id)):
                out.append(msg)
        return out

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def text_of(msg):
    return msg.get_body(("plain",)).get_content()


def html_of(msg):
    return msg.get_body(("html",)).get_content()


@pytest.fixture(scope="session")
def devsmtp(tmp_path_factory):
    server = DevSmtp(tmp_path_factory.mktemp("notifier-mail") / "maildir")
    yield server
    server.close()


@pytest.fixture(scope="session")
def twilio():
    standin = TwilioStandin(ACCOUNT_SID, AUTH_TOKEN)
    yield standin
    standin.stop()


@pytest.fixture
def notifier_config(nameko_config, devsmtp, twilio):
    return dict(nameko_config, SMTP_URL=devsmtp.url, MAIL_FROM="Exchanger <noreply@exchanger.test>",
                PUBLIC_URL="https://exchanger.test", TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                TWILIO_FROM=TWILIO_FROM, TWILIO_BASE_URL=twilio.url, TWILIO_TIMEOUT=1, SMTP_TIMEOUT=5,
                NOTIFIER_RETRY_BASE_SECONDS=0.2, NOTIFIER_RETRY_CAP_SECONDS=1, NOTIFIER_SMS_MAX_ATTEMPTS=3,
                NOTIFIER_EMAIL_MAX_ATTEMPTS=30, NOTIFIER_LEASE_SECONDS=30, NOTIFIER_IDLE_WAIT=0.2)


@pytest.fixture
def start_notifier(container_factory, notifier_config, twilio):
    def start(**overrides):
        container = container_factory(NotifierService, dict(notifier_config, **overrides))
        container.start()
        return container
    twilio.reset()
    return start


@pytest.fixture
def notifier(start_notifier):
    return start_notifier()


@pytest.fixture
def db(migrated_database):
    database = Database(url=migrated_database, schema="notifier", maxconn=4, application_name="notifier-tests")
    yield database
    database.close()


@pytest.fixture
def rpc(notifier_config):
    with ServiceRpcProxy("notifier", notifier_config, timeout=15) as proxy:
        yield proxy


class Publisher:
    """Publishes order events exactly as the orders outbox relay does."""

    def __init__(self, amqp_uri):
        self.publisher = ConfirmingPublisher(amqp_uri)
        self.publisher.declare_exchange("orders.events")

    def publish(self, envelope, routing_key=None):
        result = self.publisher.publish_batch([{
            "message_id": envelope.get("event_id", str(uuid.uuid4())), "exchange": "orders.events",
            "routing_key": routing_key or envelope["event_type"], "body": json.dumps(envelope)}])
        assert result == ["ok"], result

    def close(self):
        self.publisher.close()


@pytest.fixture
def publish():
    p = Publisher(TEST_AMQP_URI)
    yield p.publish
    p.close()


@pytest.fixture
def settings(db):
    """Set the notifier settings row directly (no alert letters); each test gets its own admin addresses."""
    def set_(**values):
        defaults = {"sms_enabled": False, "admin_email": "admin-%s@example.com" % uuid.uuid4().hex[:10],
                    "admin_phone": "+1555%07d" % (uuid.uuid4().int % 10**7), "admin_language": "en",
                    "customer_sms_fee": "0", "enabled_kinds": ["L1", "L2", "L3", "L4", "L5", "L6", "L7", "L8",
                                                               "L9", "L10", "S1", "S2", "S3", "S4", "S5"]}
        defaults.update(values)
        with db.transaction() as cur:
            cur.execute("UPDATE settings SET sms_enabled = %(sms_enabled)s, admin_email = %(admin_email)s, "
                        "admin_phone = %(admin_phone)s, admin_language = %(admin_language)s, "
                        "customer_sms_fee = %(customer_sms_fee)s, enabled_kinds = %(enabled_kinds)s "
                        "WHERE id = 1", defaults)
        return defaults
    return set_


def unique_phone():
    return "+1666%07d" % (uuid.uuid4().int % 10**7)


def unique_email(tag="c"):
    return "%s-%s@example.com" % (tag, uuid.uuid4().hex[:12])
