"""A thread-safe RPC client that speaks nameko's RPC protocol, for the gateway, the benchmarks and the tests.

Why not nameko's ClusterRpcProxy: it is single-threaded, so a web server needs a pool of them, each with its own
two connections and reply queue, and each call waits for two publisher confirms of a persistent message
(measured in docs/performance.md). Here one process shares one publishing connection and one reply consumer;
many threads have calls in flight at once, matched by correlation id. Requests are transient: an RPC that is
lost in a broker crash times out and the caller sees 503 (state and events stay durable; they never travel by
RPC). Every call has a timeout (docs/reliability.md, pitfall N7).
"""
import itertools
import json
import logging
import os
import socket
import threading
import time
import uuid

import amqp

from libs import config, errors
from libs.amqp_publish import connect

log = logging.getLogger(__name__)

RPC_EXCHANGE = "nameko-rpc"


class RpcError(Exception):
    pass


class ServiceUnavailable(RpcError):
    """No answer in time, the service is not running, or the broker is unreachable."""


class RemoteError(RpcError):
    def __init__(self, exc_type, value):
        super().__init__("%s %s" % (exc_type, value))
        self.exc_type = exc_type
        self.value = value


def _raise_remote(error):
    exc_type = error.get("exc_type")
    cls = errors.BY_NAME.get(exc_type)
    if cls is not None:
        args = error.get("exc_args") or []
        message = args[0] if args else error.get("value")
        fields = args[1] if len(args) > 1 else None
        raise cls(message, fields)
    raise RemoteError(exc_type, error.get("value"))


class _Pending:
    __slots__ = ("event", "reply")

    def __init__(self):
        self.event = threading.Event()
        self.reply = None


class RpcClient:
    def __init__(self, amqp_uri=None, timeout=10.0, name="client"):
        self.amqp_uri = amqp_uri or config.amqp_uri()
        self.timeout = timeout
        self.reply_queue = "rpc.reply-%s-%s" % (name, uuid.uuid4().hex)
        self._pending = {}
        self._pending_lock = threading.Lock()
        self._publish_lock = threading.Lock()
        self._pub_conn = None
        self._pub_channel = None
        self._consumer_ready = threading.Event()
        self._consumer_thread = None
        self._start_lock = threading.Lock()
        self._stopping = False
        self._pid = os.getpid()
        self._ids = itertools.count()
        # Replies come to this client's own queue, so a counter keeps correlation ids unique; a uuid4 per call
        # (os.urandom) was 7% of the gateway's time when creating orders.
        self._id_prefix = uuid.uuid4().hex[:12]
        self._return_watcher = None

    # -- reply side ------------------------------------------------------------------------------------------
    def _ensure_consumer(self, wait):
        if self._pid != os.getpid():  # forked (gunicorn preload): start afresh in the child
            self.__init__(self.amqp_uri, self.timeout)
        if self._consumer_thread is None or not self._consumer_thread.is_alive():
            with self._start_lock:
                if self._consumer_thread is None or not self._consumer_thread.is_alive():
                    self._consumer_ready.clear()
                    self._consumer_thread = threading.Thread(target=self._consume, name="rpc-replies",
                                                             daemon=True)
                    self._consumer_thread.start()
        if not self._consumer_ready.wait(wait):
            raise ServiceUnavailable("message broker unreachable")

    def _on_reply(self, message):
        correlation_id = message.properties.get("correlation_id")
        with self._pending_lock:
            pending = self._pending.get(correlation_id)
        if pending is not None:
            pending.reply = message.body
            pending.event.set()

    def _consume(self):
        backoff = 0.2
        while not self._stopping:
            conn = None
            try:
                conn = connect(self.amqp_uri, heartbeat=0)
                ch = conn.channel()
                ch.exchange_declare(RPC_EXCHANGE, "topic", durable=True, auto_delete=False)
                ch.queue_declare(self.reply_queue, durable=False, auto_delete=True, exclusive=True)
                ch.queue_bind(self.reply_queue, RPC_EXCHANGE, routing_key=self.reply_queue)
                ch.basic_consume(self.reply_queue, no_ack=True, callback=self._on_reply)
                self._consumer_ready.set()
                backoff = 0.2
                while not self._stopping:
                    try:
                        conn.drain_events(timeout=1.0)
                    except socket.timeout:
                        continue
            except Exception:  # noqa: BLE001 - reconnect on any broker failure
                if not self._stopping:
                    log.warning("rpc reply consumer lost its connection; reconnecting", exc_info=True)
                self._consumer_ready.clear()
                self._fail_all()
                time.sleep(backoff)
                backoff = min(backoff * 2, 5)
            finally:
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass

    def _fail_all(self):
        with self._pending_lock:
            for pending in self._pending.values():
                pending.reply = None
                pending.event.set()

    # -- request side ----------------------------------------------------------------------------------------
    def _on_return(self, exc, exchange, routing_key, message):
        correlation_id = message.properties.get("correlation_id")
        with self._pending_lock:
            pending = self._pending.get(correlation_id)
        if pending is not None:
            pending.reply = json.dumps({"result": None, "error": {
                "exc_type": "UnknownService", "value": "no service answers %s" % routing_key}})
            pending.event.set()

    def _publish(self, routing_key, body, correlation_id):
        with self._publish_lock:
            for attempt in (1, 2):
                try:
                    if self._pub_conn is None:
                        self._pub_conn = connect(self.amqp_uri, heartbeat=0)
                        self._pub_channel = self._pub_conn.channel()
                        self._pub_channel.events["basic_return"].add(self._on_return)
                    self._pub_channel.basic_publish(
                        amqp.Message(body, content_type="application/json", content_encoding="utf-8",
                                     correlation_id=correlation_id, reply_to=self.reply_queue,
                                     delivery_mode=1),
                        exchange=RPC_EXCHANGE, routing_key=routing_key, mandatory=True)
                    self._ensure_return_watcher()
                    return
                except (OSError, amqp.exceptions.AMQPError):
                    self._close_publisher()
                    if attempt == 2:
                        raise ServiceUnavailable("message broker unreachable")

    def _ensure_return_watcher(self):
        if self._return_watcher is None or not self._return_watcher.is_alive():
            self._return_watcher = threading.Thread(target=self._watch_returns, name="rpc-returns", daemon=True)
            self._return_watcher.start()

    def _watch_returns(self):
        """A request no queue takes (service not running) comes back as basic.return on the publishing
        connection; reading it every 50 ms turns "unknown service" into a fast 503 instead of a timeout."""
        while not self._stopping:
            time.sleep(0.05)
            with self._publish_lock:
                if self._pub_conn is None:
                    continue
                try:
                    self._pub_conn.drain_events(timeout=0)
                except socket.timeout:
                    pass
                except (OSError, amqp.exceptions.AMQPError):
                    self._close_publisher()

    def _close_publisher(self):
        if self._pub_conn is not None:
            try:
                self._pub_conn.close()
            except Exception:  # noqa: BLE001
                pass
        self._pub_conn = None
        self._pub_channel = None

    def call(self, service, method, *args, timeout=None, **kwargs):
        timeout = self.timeout if timeout is None else timeout
        self._ensure_consumer(wait=min(timeout, 5.0))
        correlation_id = "%s.%d" % (self._id_prefix, next(self._ids))
        pending = _Pending()
        with self._pending_lock:
            self._pending[correlation_id] = pending
        try:
            body = json.dumps({"args": list(args), "kwargs": kwargs})
            self._publish("%s.%s" % (service, method), body, correlation_id)
            if not pending.event.wait(timeout):
                raise ServiceUnavailable("%s.%s did not answer within %ss" % (service, method, timeout))
        finally:
            with self._pending_lock:
                self._pending.pop(correlation_id, None)
        if pending.reply is None:
            raise ServiceUnavailable("connection to the message broker was lost")
        reply = json.loads(pending.reply)
        if reply.get("error"):
            if reply["error"].get("exc_type") == "UnknownService":
                raise ServiceUnavailable(reply["error"].get("value"))
            _raise_remote(reply["error"])
        return reply.get("result")

    def close(self):
        self._stopping = True
        with self._publish_lock:
            self._close_publisher()


class ServiceProxy:
    """client.orders.create_order(...) sugar over RpcClient.call."""

    def __init__(self, client, service):
        self._client = client
        self._service = service

    def __getattr__(self, method):
        def call(*args, **kwargs):
            return self._client.call(self._service, method, *args, **kwargs)
        return call
