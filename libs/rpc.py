"""nameko's @rpc with replies sent transient and unconfirmed.

A reply goes to the caller's exclusive, non-durable reply queue: persisting it or waiting for a publisher confirm
buys nothing (the queue dies with the caller's connection, and a caller whose reply is lost times out with 503,
exactly as when the broker fails a moment later). The confirm round trip was ~15% of an order's CPU in the
orders process (docs/performance.md). Requests stay acked only after the reply is written (pitfall N8), and
state and events are unaffected: they never travel by RPC.
"""
from nameko.amqp.publish import Publisher
from nameko.constants import (AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY, DEFAULT_SERIALIZER,
                              LOGIN_METHOD_CONFIG_KEY, SERIALIZER_CONFIG_KEY)
from nameko.rpc import Responder, Rpc, RpcConsumer, get_rpc_exchange

TRANSIENT = 1


class ReplyPublisher(Publisher):
    use_confirms = False
    delivery_mode = TRANSIENT


class ReplyResponder(Responder):
    publisher_cls = ReplyPublisher


class ReplyingRpcConsumer(RpcConsumer):
    def handle_result(self, message, result, exc_info):
        config = self.container.config
        responder = ReplyResponder(
            config[AMQP_URI_CONFIG_KEY], get_rpc_exchange(config),
            config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER), message,
            ssl=config.get(AMQP_SSL_CONFIG_KEY), login_method=config.get(LOGIN_METHOD_CONFIG_KEY))
        result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info


class FastRpc(Rpc):
    rpc_consumer = ReplyingRpcConsumer()


rpc = FastRpc.decorator
