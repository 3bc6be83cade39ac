"""Every event subscription of the system, declared before any publisher runs (docs/reliability.md, pitfall N3).

A subscription is a nameko SERVICE_POOL event handler: queue `evt-<source>-<event>--<service>.<method>` bound to
the exchange `<source>.events`. Each has bounded delayed retries (`<queue>.retry.<n>`, a per-queue TTL that
dead-letters back to the queue) and a dead-letter queue `<queue>.dlq` for what still fails.

The relay of each publishing service declares all of them at start, and `python -m libs.topology` does it from
the command line; a unit test checks that every handler in the code is listed here.
"""
import collections

from libs import amqp_publish, config
from libs.contracts import events

Subscription = collections.namedtuple(
    "Subscription", "source event_type service method max_attempts base_delay_ms")


def sub(source, event_type, service, method, max_attempts=6, base_delay_ms=1000):
    return Subscription(source, event_type, service, method, max_attempts, base_delay_ms)


# Later services add their handlers here.
SUBSCRIPTIONS = [
    # reporting: the read model of orders (services/reporting)
    sub(events.ORDERS, events.ORDER_CREATED, "reporting", "handle_order_created"),
    sub(events.ORDERS, events.ORDER_STATUS_CHANGED, "reporting", "handle_order_status_changed"),
    sub(events.PAYMENTS, events.PAYMENT_RECEIVED, "reporting", "handle_payment_received"),
    sub(events.PAYMENTS, events.PAYMENT_UNMATCHED, "reporting", "handle_payment_unmatched"),
    sub(events.PAYMENTS, events.PAYOUT_SENT, "reporting", "handle_payout_sent"),
    sub(events.PAYMENTS, events.PAYOUT_FAILED, "reporting", "handle_payout_failed"),
    # notifier: letters and SMS of the matrix (services/notifier; L5 `partner_credited` is added with its event)
    sub(events.ORDERS, events.ORDER_CREATED, "notifier", "handle_order_created"),
    sub(events.ORDERS, events.ORDER_STATUS_CHANGED, "notifier", "handle_order_status_changed"),
    # notifier: L5 private message for a partner's credit; account letters (docs/partners.md)
    sub(events.ORDERS, events.PARTNER_CREDITED, "notifier", "handle_partner_credited"),
    sub(events.ORDERS, events.ACCOUNT_SIGNUP_REQUESTED, "notifier", "handle_account_signup_requested"),
    sub(events.ORDERS, events.PASSWORD_RESET_REQUESTED, "notifier", "handle_password_reset_requested"),
    sub(events.ORDERS, events.ACCOUNT_NOTICE, "notifier", "handle_account_notice"),
    # payments: its copy of orders and the payouts they ask for; orders: what payments found and sent (docs/payments.md)
    sub(events.ORDERS, events.ORDER_CREATED, "payments", "handle_order_created"),
    sub(events.ORDERS, events.ORDER_STATUS_CHANGED, "payments", "handle_order_status_changed"),
    sub(events.ORDERS, events.PAYMENT_REJECTED, "payments", "handle_payment_rejected"),
    sub(events.ORDERS, events.PARTNER_PAYOUT_REQUESTED, "payments", "handle_partner_payout_requested"),
    sub(events.PAYMENTS, events.PAYMENT_RECEIVED, "orders", "handle_payment_received"),
    sub(events.PAYMENTS, events.PAYOUT_SENT, "orders", "handle_payout_sent"),
    sub(events.PAYMENTS, events.PAYOUT_FAILED, "orders", "handle_payout_failed"),
    sub(events.PAYMENTS, events.BALANCE_CHANGED, "orders", "handle_balance_changed"),
    sub(events.PAYMENTS, events.WITHDRAWAL_PAYOUT_SENT, "orders", "handle_withdrawal_payout_sent"),
    sub(events.PAYMENTS, events.WITHDRAWAL_PAYOUT_FAILED, "orders", "handle_withdrawal_payout_failed"),
    # notifier: one admin letter for newly found stuck work (docs/architecture.md, "Stuck work")
    sub(events.PAYMENTS, events.STUCK_WORK_FOUND, "notifier", "handle_stuck_work_found"),
    sub(events.ORDERS, events.STUCK_WORK_FOUND, "notifier", "handle_stuck_work_found"),
    # a payout resolved `failed` that went out after all: orders flags the order or withdrawal, the notifier
    # tells the admin (docs/payments.md, "Resolving a payout by hand")
    sub(events.PAYMENTS, events.PAYOUT_SUCCEEDED_AFTER_RESOLVE, "orders", "handle_payout_succeeded_after_resolve"),
    sub(events.PAYMENTS, events.PAYOUT_SUCCEEDED_AFTER_RESOLVE, "notifier", "handle_payout_succeeded_after_resolve"),
    # notifier: a change that moves money, or who may move it, alerts every admin (docs/security.md)
    sub(events.ORDERS, events.SECURITY_CHANGE, "notifier", "handle_security_change"),
    sub(events.PAYMENTS, events.SECURITY_CHANGE, "notifier", "handle_security_change"),
    sub(events.RATES, events.SECURITY_CHANGE, "notifier", "handle_security_change"),
    # the rate engine (docs/rates.md): orders applies its verdicts on directions; the notifier mails the admin the
    # directions a guard froze
    sub(events.RATES, events.RATES_COMPUTED, "orders", "handle_rates_computed"),
    sub(events.RATES, events.DIRECTIONS_FROZEN, "notifier", "handle_directions_frozen"),
    # orders: the customer SMS fee announced by the notifier (docs/notifier.md, "Settings")
    sub(events.NOTIFIER, events.SETTINGS_CHANGED, "orders", "handle_settings_changed"),
    # orders: the monitors' rates file rendered again after a catalogue or reserve change (docs/monitors.md)
    sub(events.ORDERS, events.DIRECTIONS_CHANGED, "orders", "handle_directions_changed"),
]

# Handlers that exist only in the test suite register themselves here at import (see tests/).
EXTRA_SUBSCRIPTIONS = []


def all_subscriptions():
    return list(SUBSCRIPTIONS) + list(EXTRA_SUBSCRIPTIONS)


def subscribed_event_types(source):
    """The event types of `source` that at least one handler subscribes to."""
    return {s.event_type for s in all_subscriptions() if s.source == source}


def queue_name(source, event_type, service, method):
    return "evt-{}-{}--{}.{}".format(source, event_type, service, method)


def retry_queue_name(queue, attempt):
    return "%s.retry.%d" % (queue, attempt)


def dead_letter_queue_name(queue):
    return "%s.dlq" % queue


def retry_delay_ms(base_delay_ms, attempt):
    """Delay before delivery `attempt + 1`: base, 2x base, 4x base..."""
    return base_delay_ms * (2 ** (attempt - 1))


def declare_subscription(channel, s):
    exchange = "%s.events" % s.source
    channel.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
    queue = queue_name(s.source, s.event_type, s.service, s.method)
    # Same arguments as nameko's EventHandler declares, or RabbitMQ refuses the second declaration.
    channel.queue_declare(queue, durable=True, auto_delete=False, exclusive=False)
    channel.queue_bind(queue, exchange, routing_key=s.event_type)
    for attempt in range(1, s.max_attempts):
        channel.queue_declare(
            retry_queue_name(queue, attempt), durable=True, auto_delete=False, exclusive=False,
            arguments={"x-message-ttl": retry_delay_ms(s.base_delay_ms, attempt),
                       "x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue})
    channel.queue_declare(dead_letter_queue_name(queue), durable=True, auto_delete=False, exclusive=False)
    return queue


def declare(amqp_uri, subscriptions):
    conn = amqp_publish.connect(amqp_uri)
    try:
        ch = conn.channel()
        for s in subscriptions:
            declare_subscription(ch, s)
        for source in events.SOURCES:
            ch.exchange_declare("%s.events" % source, "topic", durable=True, auto_delete=False)
    finally:
        conn.close()


def declare_all(amqp_uri=None):
    declare(amqp_uri or config.amqp_uri(), all_subscriptions())


if __name__ == "__main__":
    declare_all()
    print("declared %d subscriptions" % len(all_subscriptions()))
