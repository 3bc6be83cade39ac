"""Publish an event envelope to its source's exchange as a relay does (confirmed, mandatory): the interface tests
that play another service's part."""
import json

from libs.amqp_publish import ConfirmingPublisher
from tests.conftest import TEST_AMQP_URI


def publish(envelope):
    exchange = "%s.events" % envelope["source"]
    publisher = ConfirmingPublisher(TEST_AMQP_URI)
    try:
        publisher.declare_exchange(exchange)
        assert publisher.publish_batch([{"message_id": envelope["event_id"], "exchange": exchange,
                                         "routing_key": envelope["event_type"],
                                         "body": json.dumps(envelope)}]) == ["ok"]
    finally:
        publisher.close()
