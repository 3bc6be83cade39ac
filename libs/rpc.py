"""nameko's @rpc with replies sent transient and unconfirmed, on one kept connection per container.

A reply goes to the caller's exclusive, non-durable reply queue: persisting it or waiting for a publisher confirm
buys nothing (the queue dies with the caller's connection, and a caller whose reply is lost times out with 503,
exactly as when the broker fails a moment later). The confirm round trip was ~15% of an order's CPU in the
orders process, and taking a producer from kombu's pool for every reply another third (docs/performance.md).
A request is acked only after its reply is written, so a crash before that redelivers it (nameko may run an RPC
twice: every state change an RPC makes is compare-and-set or carries an idempotency key, docs/architecture.md).
State and events never travel by RPC.
"""
import logging
import threading

import amqp
import kombu.serialization
from nameko.amqp.publish import Publisher
from nameko.constants import (AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY, DEFAULT_SERIALIZER,
                              LOGIN_METHOD_CONFIG_KEY, SERIALIZER_CONFIG_KEY)
from nameko.exceptions import UnserializableValueError, serialize
from nameko.extensions import SharedExtension
from nameko.rpc import Responder, Rpc, RpcConsumer, get_rpc_exchange

from libs.amqp_publish import connect

log = logging.getLogger(__name__)

TRANSIENT = 1


class ReplyPublisher(Publisher):
    use_confirms = False
    delivery_mode = TRANSIENT


class ReplyResponder(Responder):
    """nameko's responder with transient, unconfirmed replies: the fallback when the kept channel fails."""
    publisher_cls = ReplyPublisher


class ReplyChannel(SharedExtension):
    """One AMQP connection per container for all RPC replies, reopened on the next reply after an error."""

    def setup(self):
        self._lock = threading.Lock()
        self._conn = None
        self._channel = None

    def _open(self):
        self._conn = connect(self.container.config[AMQP_URI_CONFIG_KEY])
        self._channel = self._conn.channel()

    def _close(self):
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass

    def publish(self, exchange, routing_key, body, content_type, content_encoding, correlation_id):
        message = amqp.Message(body, content_type=content_type, content_encoding=content_encoding,
                               correlation_id=correlation_id, delivery_mode=TRANSIENT)
        with self._lock:
            try:
                if self._channel is None:
                    self._open()
                self._channel.basic_publish(message, exchange=exchange, routing_key=routing_key)
            except Exception:
                self._close()
                raise

    def stop(self):
        with self._lock:
            self._close()

    def kill(self):
        self._close()


class ReplyingRpcConsumer(RpcConsumer):
    reply_channel = ReplyChannel()

    def handle_result(self, message, result, exc_info):
        try:
            result, exc_info = self._reply(message, result, exc_info)
        except Exception:  # noqa: BLE001 - the kept channel failed: nameko's own responder, on a new connection
            log.warning("RPC reply on the kept channel failed; sending it through nameko's publisher",
                        exc_info=True)
            config = self.container.config
            responder = ReplyResponder(
                config[AMQP_URI_CONFIG_KEY], get_rpc_exchange(config),
                config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER), message,
                ssl=config.get(AMQP_SSL_CONFIG_KEY), login_method=config.get(LOGIN_METHOD_CONFIG_KEY))
            result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info

    def _reply(self, message, result, exc_info):
        """What nameko's Responder.send_response does, on the kept channel."""
        error = serialize(exc_info[1]) if exc_info is not None else None
        serializer = kombu.serialization.registry.type_to_name[message.properties["content_type"]]
        try:
            content_type, content_encoding, body = kombu.serialization.dumps(
                {"result": result, "error": error}, serializer)
        except Exception:  # noqa: BLE001 - an unserializable result is the caller's error, not ours
            exc_info = (UnserializableValueError, UnserializableValueError(result), None)
            result = None
            content_type, content_encoding, body = kombu.serialization.dumps(
                {"result": None, "error": serialize(exc_info[1])}, serializer)
        self.reply_channel.publish(get_rpc_exchange(self.container.config).name, message.properties["reply_to"],
                                   body, content_type, content_encoding,
                                   message.properties.get("correlation_id"))
        return result, exc_info


class FastRpc(Rpc):
    rpc_consumer = ReplyingRpcConsumer()


rpc = FastRpc.decorator
