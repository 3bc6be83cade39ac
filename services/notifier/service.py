"""Notifier service entrypoints: order event handlers, RPC for the gateway (log, settings, resend, inbox, Twilio
status callbacks, admin alerts). Decisions live in domain.py, storage in store.py, sending in sender.py."""
import hashlib
import json
import logging

from nameko.rpc import rpc

from libs import errors
from libs.contracts import events
from libs.contracts.orders import (AccountLetterSchema, OrderCreatedSchema, OrderStatusChangedSchema,
                                   PartnerCreditedSchema)
from libs.messaging import batch_event_handler, reliable_event_handler
from libs.metrics import EntrypointMetrics
from libs.outbox import OutboxRelayProvider
from services.notifier import domain, metrics
from services.notifier.sender import NotifierProvider

log = logging.getLogger(__name__)
expected = errors.EXPECTED

# Built once: a marshmallow schema instance is reusable and costly to build per event.
ORDER_CREATED_SCHEMA = OrderCreatedSchema()
ORDER_STATUS_CHANGED_SCHEMA = OrderStatusChangedSchema()
PARTNER_CREDITED_SCHEMA = PartnerCreditedSchema()
ACCOUNT_LETTER_SCHEMA = AccountLetterSchema()

SID_CHARS = set("0123456789abcdefABCDEF")


def _load(schema, payload):
    envelope = events.load_envelope(payload)
    return envelope, schema.load(envelope["data"])


class NotifierService:
    name = "notifier"

    store = NotifierProvider()
    relay = OutboxRelayProvider("notifier")
    metrics = EntrypointMetrics()

    @rpc
    def ping(self):
        return "notifier"

    # -- events ----------------------------------------------------------------------------------------------
    @batch_event_handler(events.ORDERS, events.ORDER_CREATED)
    def handle_order_created(self, payloads):
        batch = [_load(ORDER_CREATED_SCHEMA, payload) for payload in payloads]
        return self.store.consume_order_events("notifier.handle_order_created", events.ORDER_CREATED,
                                               [(envelope["event_id"], data) for envelope, data in batch])

    @batch_event_handler(events.ORDERS, events.ORDER_STATUS_CHANGED)
    def handle_order_status_changed(self, payloads):
        batch = [_load(ORDER_STATUS_CHANGED_SCHEMA, payload) for payload in payloads]
        return self.store.consume_order_events("notifier.handle_order_status_changed", events.ORDER_STATUS_CHANGED,
                                               [(envelope["event_id"], data) for envelope, data in batch])

    # L5: orders credits a partner's commission (issue 7) -> a private message in the partner's inbox.
    @reliable_event_handler(events.ORDERS, events.PARTNER_CREDITED)
    def handle_partner_credited(self, payload):
        envelope, data = _load(PARTNER_CREDITED_SCHEMA, payload)
        return self.store.consume_partner_credit("notifier.handle_partner_credited", envelope["event_id"], data)

    # Account letters (issue 7): the one-time link of a sign-up confirmation or a password reset.
    @reliable_event_handler(events.ORDERS, events.ACCOUNT_SIGNUP_REQUESTED)
    def handle_account_signup_requested(self, payload):
        envelope, data = _load(ACCOUNT_LETTER_SCHEMA, payload)
        return self.store.consume_account_letter("notifier.handle_account_signup_requested", envelope["event_id"],
                                                 "SIGNUP", data)

    @reliable_event_handler(events.ORDERS, events.PASSWORD_RESET_REQUESTED)
    def handle_password_reset_requested(self, payload):
        envelope, data = _load(ACCOUNT_LETTER_SCHEMA, payload)
        return self.store.consume_account_letter("notifier.handle_password_reset_requested", envelope["event_id"],
                                                 "RESET", data)

    # -- the send log ----------------------------------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def list_notifications(self, filters=None):
        filters = dict(filters or {})
        bad = {}
        if filters.get("kind") and filters["kind"] not in domain.KINDS + (domain.ALERT,) + domain.ACCOUNT_KINDS:
            bad["kind"] = ["unknown kind"]
        if filters.get("channel") and filters["channel"] not in domain.CHANNELS:
            bad["channel"] = ["must be one of %s" % ", ".join(domain.CHANNELS)]
        if filters.get("status") and filters["status"] not in domain.STATUSES:
            bad["status"] = ["must be one of %s" % ", ".join(domain.STATUSES)]
        if bad:
            raise errors.ValidationFailed("invalid filter", bad)
        return self.store.list_notifications(filters)

    @rpc(expected_exceptions=expected)
    def get_notification(self, notification_id):
        return self.store.get_notification(int(notification_id))

    @rpc(expected_exceptions=expected)
    def resend(self, notification_id, actor):
        if not (actor or {}).get("name"):
            raise errors.Forbidden("operator actions need an actor")
        return self.store.resend(int(notification_id), actor)

    # -- settings --------------------------------------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def get_settings(self):
        return self.store.get_settings()

    @rpc(expected_exceptions=expected)
    def put_settings(self, changes, actor, expected_version=None):
        return self.store.put_settings(changes, actor, expected_version)

    @rpc(expected_exceptions=expected)
    def send_admin_alert(self, subject, body, key=None, also_to=None):
        """A security notice to the admin address (settings changed, staff sign-in from a new address), and to
        `also_to` too (e.g. the admin address before a change). `key` names the occurrence so a repeated call
        (nameko may run an RPC twice; callers retry) queues nothing new; without it the text is the key."""
        bad = {}
        if not isinstance(subject, str) or not 1 <= len(subject) <= 200:
            bad["subject"] = ["1 to 200 characters"]
        if not isinstance(body, str) or not 1 <= len(body) <= 20000:
            bad["body"] = ["1 to 20000 characters"]
        if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 200):
            bad["key"] = ["1 to 200 characters"]
        if also_to is not None and (not isinstance(also_to, str) or not domain.EMAIL_RE.match(also_to)):
            bad["also_to"] = ["an e-mail address"]
        if bad:
            raise errors.ValidationFailed("invalid alert", bad)
        if key is None:
            key = "sha256-" + hashlib.sha256(json.dumps([subject, body, also_to]).encode()).hexdigest()
        settings = self.store.get_settings()
        recipients = [a for a in (settings["admin_email"], also_to) if a]
        return {"queued": self.store.queue_alert(subject, body, key, recipients)}

    # -- Twilio status callbacks (verified by the gateway) ----------------------------------------------------
    @rpc(expected_exceptions=expected)
    def sms_status_callback(self, message_sid, message_status, error_code=None):
        if not (isinstance(message_sid, str) and len(message_sid) == 34 and message_sid[:2].isalpha()
                and set(message_sid[2:]) <= SID_CHARS):
            raise errors.ValidationFailed("invalid callback", {"MessageSid": ["not a message SID"]})
        if message_status not in domain.PROVIDER_STATUS_RANK:
            outcome = "ignored"
        else:
            outcome = self.store.sms_status(message_sid, message_status,
                                            str(error_code)[:16] if error_code else None)
        metrics.CALLBACKS.labels(outcome).inc()
        return {"outcome": outcome}

    # -- private messages ------------------------------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def list_messages(self, owner, unread_only=False, limit=50, cursor=None):
        _check_owner(owner)
        return self.store.list_messages(owner, unread_only, limit, cursor)

    @rpc(expected_exceptions=expected)
    def mark_read(self, owner, message_ids):
        _check_owner(owner)
        if not isinstance(message_ids, list) or not all(isinstance(i, int) for i in message_ids):
            raise errors.ValidationFailed("invalid ids", {"message_ids": ["a list of message ids"]})
        return {"marked": self.store.mark_read(owner, message_ids)}


def _check_owner(owner):
    if not isinstance(owner, str) or not 3 <= len(owner) <= 100 or ":" not in owner:
        raise errors.ValidationFailed("invalid owner", {"owner": ["like partner:<id>"]})

