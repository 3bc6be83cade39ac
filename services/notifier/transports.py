"""The two providers: e-mail over SMTP (smtplib, green under eventlet) and SMS through the twilio client.

Both raise `SendError(transient=..., outcome_unknown=...)`: transient failures are retried later, permanent ones
end the notification as `failed`; `outcome_unknown` means the provider may have accepted the message (a read
timeout after the request went out), which for SMS is checked at Twilio before the next attempt.
"""
import datetime
import email.policy
import email.utils
import logging
import queue
import smtplib
import socket
import ssl
import time
from email.charset import QP, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from urllib.parse import parse_qs, unquote, urlsplit

import requests

log = logging.getLogger(__name__)

UTF8_QP = Charset("utf-8")
UTF8_QP.body_encoding = QP  # readable in the raw source, unlike base64
SMTP_LINES = email.policy.compat32.clone(linesep="\r\n")  # smtplib does not fix line ends of bytes


class SendError(Exception):
    def __init__(self, message, transient, outcome_unknown=False):
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.outcome_unknown = outcome_unknown


class NotConfigured(SendError):
    def __init__(self, message):
        super().__init__(message, transient=False)


# -- e-mail ----------------------------------------------------------------------------------------------------
def parse_smtp_url(url):
    """smtp://host:port (plain), smtp+starttls://host:port, smtps://host:port (TLS from the first byte);
    user:password@ when the server wants a login; ?verify=0 accepts a self-signed certificate (dev only)."""
    parts = urlsplit(url or "")
    schemes = {"smtp": (25, None), "smtp+starttls": (587, "starttls"), "smtps": (465, "tls")}
    if parts.scheme not in schemes:
        raise ValueError("SMTP_URL must start with smtp://, smtp+starttls:// or smtps://")
    default_port, security = schemes[parts.scheme]
    query = parse_qs(parts.query)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or default_port,
        "security": security,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "verify": query.get("verify", ["1"])[0] not in ("0", "false", "no"),
    }


class SmtpMailer:
    """Sends letters over a small pool of reused SMTP connections (a new TLS handshake and login per letter
    would dominate the cost of a backlog)."""

    IDLE_CHECK_SECONDS = 10.0

    def __init__(self, url, mail_from, timeout=30.0, pool_size=4):
        self.url = url
        self.params = parse_smtp_url(url)
        self.mail_from = mail_from
        name, address = email.utils.parseaddr(mail_from)
        self.envelope_from = address or mail_from
        self.from_header = email.utils.formataddr((name, self.envelope_from), charset="utf-8")
        self.domain = self.envelope_from.rpartition("@")[2] or "exchanger.local"
        self.timeout = timeout
        self._idle = queue.LifoQueue(maxsize=pool_size)

    def build(self, row):
        """multipart/alternative (text + HTML) in UTF-8. Built with the compat32 MIME classes:
        a third of the CPU of EmailMessage's header parsing, which showed in the backlog benchmark."""
        # quoted-printable keeps Latin text readable in the source; Cyrillic is shorter in base64
        charset = UTF8_QP if row.get("language", "en") == "en" else "utf-8"
        if row.get("body_html"):
            msg = MIMEMultipart("alternative")
            msg.attach(MIMEText(row["body_text"], "plain", charset))
            msg.attach(MIMEText(row["body_html"], "html", charset))
        else:
            msg = MIMEText(row["body_text"], "plain", charset)
        msg["From"] = self.from_header
        msg["To"] = row["recipient"]
        msg["Subject"] = Header(row["subject"] or "", "utf-8")
        msg["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
        # The same Message-ID on every attempt: if a crash makes us send twice, mail clients can fold the copies.
        msg["Message-ID"] = self.message_id(row)
        msg["X-Exchanger-Kind"] = row["kind"]
        msg["X-Exchanger-Notification"] = str(row["id"])
        if row.get("order_id") is not None:
            msg["X-Exchanger-Order"] = str(row["order_id"])
        msg["Auto-Submitted"] = "auto-generated"
        return msg

    def message_id(self, row):
        return "<notification-%s-%s@%s>" % (row["id"], row["resends"], self.domain)

    def _tls_context(self):
        context = ssl.create_default_context()
        if not self.params["verify"]:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self):
        p = self.params
        if p["security"] == "tls":
            conn = smtplib.SMTP_SSL(p["host"], p["port"], timeout=self.timeout, context=self._tls_context())
        else:
            conn = smtplib.SMTP(p["host"], p["port"], timeout=self.timeout)
            if p["security"] == "starttls":
                conn.starttls(context=self._tls_context())
        conn.ehlo_or_helo_if_needed()
        if p["username"]:
            conn.login(p["username"], p["password"] or "")
        return conn

    def _checkout(self):
        while True:
            try:
                conn, idle_since = self._idle.get_nowait()
            except queue.Empty:
                return self._connect()
            if time.monotonic() - idle_since < self.IDLE_CHECK_SECONDS:
                return conn
            try:  # idle for a while: the server may have hung up
                if conn.noop()[0] == 250:
                    return conn
            except (smtplib.SMTPException, OSError):
                pass
            _quit(conn)

    def _checkin(self, conn):
        try:
            self._idle.put_nowait((conn, time.monotonic()))
        except queue.Full:
            _quit(conn)

    def send(self, row):
        """Send one letter; returns its Message-ID. Raises SendError."""
        msg = self.build(row)
        conn = None
        try:
            conn = self._checkout()
            conn.sendmail(self.envelope_from, [row["recipient"]], msg.as_bytes(policy=SMTP_LINES))
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            self._discard(conn)
            raise SendError("recipient refused: %s %s" % (code, _text(text)), transient=400 <= code < 500)
        except smtplib.SMTPResponseException as exc:
            self._discard(conn)
            raise SendError("SMTP %s %s" % (exc.smtp_code, _text(exc.smtp_error)),
                            transient=exc.smtp_code < 500 or exc.smtp_code in (530, 535))
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timeout, TLS errors: try again later
            self._discard(conn)
            raise SendError("SMTP unavailable: %s: %s" % (type(exc).__name__, exc), transient=True,
                            outcome_unknown=conn is not None)
        self._checkin(conn)
        return self.message_id(row)

    def _discard(self, conn):
        if conn is not None:
            _quit(conn)

    def close(self):
        while True:
            try:
                conn, _ = self._idle.get_nowait()
            except queue.Empty:
                return
            _quit(conn)


def _quit(conn):
    try:
        conn.quit()
    except Exception:  # noqa: BLE001 - closing a broken connection
        try:
            conn.close()
        except Exception:  # noqa: BLE001
            pass


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# -- SMS -------------------------------------------------------------------------------------------------------
TWILIO_API = "https://api.twilio.com"


def twilio_http_client(base_url, timeout):
    """The twilio client's own extension point (a custom http_client) aims it elsewhere: a TwilioHttpClient that
    rewrites https://api.twilio.com to TWILIO_BASE_URL (a stand-in in tests). Always with a timeout, so a hung
    provider cannot hold a send forever."""
    from twilio.http.http_client import TwilioHttpClient

    class RewritingHttpClient(TwilioHttpClient):
        def request(self, method, url, *args, **kwargs):
            if base_url and url.startswith(TWILIO_API):
                url = base_url.rstrip("/") + url[len(TWILIO_API):]
            return super().request(method, url, *args, **kwargs)

    return RewritingHttpClient(timeout=timeout)


class TwilioSms:
    def __init__(self, account_sid, auth_token, from_number, base_url=None, timeout=10.0, status_callback=None):
        self.account_sid = account_sid or None
        self.auth_token = auth_token or None
        self.from_number = from_number or None
        self.base_url = base_url or None
        self.timeout = timeout
        self.status_callback = status_callback or None
        self._client = None

    @property
    def configured(self):
        return bool(self.account_sid and self.auth_token and self.from_number)

    @property
    def client(self):
        if self._client is None:
            from twilio.rest import Client
            self._client = Client(self.account_sid, self.auth_token,
                                  http_client=twilio_http_client(self.base_url, self.timeout))
        return self._client

    def send(self, row):
        """Create the message at Twilio; returns (MessageSid, initial status). Raises SendError."""
        if not self.configured:
            raise NotConfigured("SMS is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM)")
        kwargs = {"to": row["recipient"], "from_": self.from_number, "body": row["body_text"]}
        if self.status_callback:
            kwargs["status_callback"] = self.status_callback
        try:
            message = self.client.messages.create(**kwargs)
        except Exception as exc:  # noqa: BLE001 - classified below
            raise classify_twilio_error(exc)
        return message.sid, message.status

    def find_sent(self, row, since):
        """After an attempt whose outcome is unknown: the message Twilio already accepted for this row, if any
        (same recipient, sender and text, created after the attempt began). Twilio has no idempotency key."""
        if not self.configured:
            return None
        # Twilio's dates have whole seconds (and its clock is not ours): look a little further back.
        since = since - datetime.timedelta(minutes=2) if since is not None else None
        try:
            messages = self.client.messages.list(to=row["recipient"], from_=self.from_number,
                                                 date_sent_after=since, limit=50)
        except Exception as exc:  # noqa: BLE001
            raise classify_twilio_error(exc)
        for m in messages:
            created = m.date_created
            if m.body == row["body_text"] and (created is None or since is None or created >= since):
                return m.sid, m.status
        return None


def classify_twilio_error(exc):
    from twilio.base.exceptions import TwilioRestException
    if isinstance(exc, TwilioRestException):
        status = exc.status or 0
        detail = "Twilio %s%s: %s" % (status, " code %s" % exc.code if exc.code else "", exc.msg)
        if status == 429:
            return SendError(detail, transient=True)
        if status >= 500:  # the request reached Twilio: it may have been accepted
            return SendError(detail, transient=True, outcome_unknown=True)
        return SendError(detail, transient=False)
    if isinstance(exc, (requests.exceptions.ConnectTimeout,)):
        return SendError("Twilio connect timeout", transient=True)
    if isinstance(exc, requests.exceptions.ConnectionError) and _not_connected(exc):
        return SendError("Twilio unreachable: %s" % exc, transient=True)
    if isinstance(exc, (requests.exceptions.RequestException, socket.timeout, OSError)):
        return SendError("Twilio %s: %s" % (type(exc).__name__, exc), transient=True, outcome_unknown=True)
    return SendError("Twilio error %s: %s" % (type(exc).__name__, exc), transient=True, outcome_unknown=True)


def _not_connected(exc):
    """True when the connection was never made (refused, DNS), so the request cannot have reached Twilio."""
    text = repr(exc)
    return "NewConnectionError" in text or "Connection refused" in text or "NameResolutionError" in text
