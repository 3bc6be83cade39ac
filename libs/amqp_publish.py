"""Confirmed, mandatory publishing in batches on a plain py-amqp connection.

nameko's own publisher waits for one confirm per message and publishes with mandatory=False (an event with no
queue is silently confirmed: docs/reliability.md, pitfall N3). The outbox relay and the retry/dead-letter path need
both: every message confirmed by the broker, and an unroutable one reported back instead of dropped.
"""
import json
import logging
import socket
import threading
import time
from urllib.parse import unquote, urlsplit

import amqp

log = logging.getLogger(__name__)

PERSISTENT = 2


def connect(amqp_uri, heartbeat=0, connect_timeout=5):
    parts = urlsplit(amqp_uri)
    vhost = unquote(parts.path[1:]) if parts.path and parts.path != "/" else "/"
    conn = amqp.Connection(
        host="%s:%s" % (parts.hostname or "127.0.0.1", parts.port or 5672),
        userid=unquote(parts.username or "guest"), password=unquote(parts.password or "guest"),
        virtual_host=vhost, heartbeat=heartbeat, connect_timeout=connect_timeout)
    conn.connect()
    return conn


class PublishError(Exception):
    pass


class ConfirmingPublisher:
    """Publishes batches; `publish_batch` returns, per message, 'ok', 'returned' (no queue bound) or 'nacked'.

    Thread-safe (one lock); reconnects on the next call after a connection error.
    """

    def __init__(self, amqp_uri, confirm_timeout=10.0):
        self.amqp_uri = amqp_uri
        self.confirm_timeout = confirm_timeout
        self._conn = None
        self._channel = None
        self._lock = threading.Lock()
        self._declared = set()

    def _ensure(self):
        if self._conn is None:
            self._conn = connect(self.amqp_uri)
            self._channel = self._conn.channel()
            self._channel.confirm_select()
            self._next_tag = 1
            self._acked = set()
            self._nacked = set()
            self._returned = set()
            self._declared = set()
            ch = self._channel
            ch.events["basic_ack"].add(self._on_ack)
            ch.events["basic_nack"].add(self._on_nack)
            ch.events["basic_return"].add(self._on_return)
        return self._channel

    def _settle(self, tags_set, delivery_tag, multiple):
        if multiple:
            for tag in range(self._lowest_pending, delivery_tag + 1):
                tags_set.add(tag)
        else:
            tags_set.add(delivery_tag)

    def _on_ack(self, delivery_tag, multiple):
        self._settle(self._acked, delivery_tag, multiple)

    def _on_nack(self, delivery_tag, multiple):
        self._settle(self._nacked, delivery_tag, multiple)

    def _on_return(self, exc, exchange, routing_key, message):
        self._returned.add(message.properties.get("message_id"))

    def close(self):
        with self._lock:
            self._close()

    def _close(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
        self._conn = None
        self._channel = None

    def declare_exchange(self, name, type_="topic"):
        with self._lock:
            try:
                ch = self._ensure()
                if name not in self._declared:
                    ch.exchange_declare(name, type_, durable=True, auto_delete=False)
                    self._declared.add(name)
            except (OSError, amqp.exceptions.AMQPError):
                self._close()
                raise

    def publish_batch(self, messages):
        """messages: list of dicts {message_id, exchange, routing_key, body(bytes|dict), headers?, expiration?}."""
        with self._lock:
            try:
                return self._publish_batch(messages)
            except (OSError, socket.timeout, amqp.exceptions.AMQPError) as exc:
                self._close()
                raise PublishError(str(exc)) from exc

    def _publish_batch(self, messages):
        ch = self._ensure()
        self._acked.clear()
        self._nacked.clear()
        self._returned.clear()
        self._lowest_pending = self._next_tag
        tags = []
        for m in messages:
            body = m["body"]
            if not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            props = {"message_id": m["message_id"], "content_type": m.get("content_type", "application/json"),
                     "content_encoding": "utf-8", "delivery_mode": PERSISTENT,
                     "application_headers": m.get("headers") or {}}
            if m.get("expiration"):
                props["expiration"] = str(m["expiration"])
            ch.basic_publish(amqp.Message(body, **props), exchange=m["exchange"],
                             routing_key=m["routing_key"], mandatory=True)
            tags.append(self._next_tag)
            self._next_tag += 1
        deadline = time.monotonic() + self.confirm_timeout
        last = tags[-1] if tags else None
        while last is not None and not all(t in self._acked or t in self._nacked for t in tags):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishError("no publisher confirm within %ss" % self.confirm_timeout)
            try:
                self._conn.drain_events(timeout=min(remaining, 1.0))
            except socket.timeout:
                continue
        results = []
        for m, tag in zip(messages, tags):
            if tag in self._nacked:
                results.append("nacked")
            elif m["message_id"] in self._returned:
                results.append("returned")
            else:
                results.append("ok")
        return results
