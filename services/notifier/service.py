"""Notifier service entrypoints: order event handlers, RPC for the gateway (log, settings, resend, inbox, Twilio
status callbacks, admin alerts). The work is done by the dependencies (dependencies.py): rules in domain.py, SQL
in store.py, wire forms and argument checks in schemas.py, sending in sender.py and transports.py."""
from libs import errors
from libs.contracts import events
from libs.messaging import batch_event_handler, reliable_event_handler
from libs.metrics import EntrypointMetrics
from libs.outbox import OutboxRelayProvider
from libs.rpc import rpc
from services.notifier.dependencies import (InboxProvider, LettersProvider, SenderProvider, SendLogProvider,
                                            SettingsProvider, SmsCallbacksProvider)

expected = errors.EXPECTED


class NotifierService:
    name = "notifier"

    letters = LettersProvider()
    sender = SenderProvider()
    send_log = SendLogProvider()
    settings = SettingsProvider()
    sms_callbacks = SmsCallbacksProvider()
    inbox = InboxProvider()
    relay = OutboxRelayProvider()
    metrics = EntrypointMetrics()

    @rpc
    def ping(self):
        return "notifier"

    # -- events ----------------------------------------------------------------------------------------------
    @batch_event_handler(events.ORDERS, events.ORDER_CREATED)
    def handle_order_created(self, payloads):
        return self.letters.order_events("notifier.handle_order_created", events.ORDER_CREATED, payloads)

    @batch_event_handler(events.ORDERS, events.ORDER_STATUS_CHANGED)
    def handle_order_status_changed(self, payloads):
        return self.letters.order_events("notifier.handle_order_status_changed", events.ORDER_STATUS_CHANGED,
                                         payloads)

    @reliable_event_handler(events.ORDERS, events.PARTNER_CREDITED)
    def handle_partner_credited(self, payload):
        return self.letters.partner_credited("notifier.handle_partner_credited", payload)

    @reliable_event_handler(events.ORDERS, events.ACCOUNT_SIGNUP_REQUESTED)
    def handle_account_signup_requested(self, payload):
        return self.letters.account_letter("notifier.handle_account_signup_requested", "SIGNUP", payload)

    @reliable_event_handler(events.ORDERS, events.PASSWORD_RESET_REQUESTED)
    def handle_password_reset_requested(self, payload):
        return self.letters.account_letter("notifier.handle_password_reset_requested", "RESET", payload)

    @reliable_event_handler(events.ORDERS, events.ACCOUNT_NOTICE)
    def handle_account_notice(self, payload):
        return self.letters.account_notice("notifier.handle_account_notice", payload)

    # One method, two subscriptions (queues differ by source): both services announce stuck work the same way.
    @reliable_event_handler(events.PAYMENTS, events.STUCK_WORK_FOUND)
    @reliable_event_handler(events.ORDERS, events.STUCK_WORK_FOUND)
    def handle_stuck_work_found(self, payload):
        return self.letters.stuck_work_found("notifier.handle_stuck_work_found", payload)

    @reliable_event_handler(events.RATES, events.DIRECTIONS_FROZEN)
    def handle_directions_frozen(self, payload):
        return self.letters.directions_frozen("notifier.handle_directions_frozen", payload)

    @reliable_event_handler(events.PAYMENTS, events.PAYOUT_SUCCEEDED_AFTER_RESOLVE)
    def handle_payout_succeeded_after_resolve(self, payload):
        return self.letters.payout_succeeded_after_resolve("notifier.handle_payout_succeeded_after_resolve", payload)

    # A change that moves money, made in orders, payments or the rate engine (libs/contracts/security.py): alert
    # every admin.
    @reliable_event_handler(events.RATES, events.SECURITY_CHANGE)
    @reliable_event_handler(events.PAYMENTS, events.SECURITY_CHANGE)
    @reliable_event_handler(events.ORDERS, events.SECURITY_CHANGE)
    def handle_security_change(self, payload):
        return self.letters.security_change("notifier.handle_security_change", payload)

    # -- the send log ----------------------------------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def list_notifications(self, filters=None):
        return self.send_log.list(filters)

    @rpc(expected_exceptions=expected)
    def get_notification(self, notification_id):
        return self.send_log.get(notification_id)

    @rpc(expected_exceptions=expected)
    def resend(self, notification_id, actor):
        return self.send_log.resend(notification_id, actor)

    # -- settings --------------------------------------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def get_settings(self):
        return self.settings.get()

    @rpc(expected_exceptions=expected)
    def put_settings(self, changes, actor, expected_version=None):
        return self.settings.put(changes, actor, expected_version)

    @rpc(expected_exceptions=expected)
    def send_admin_alert(self, subject, body, key=None, also_to=None, sms=False):
        return self.letters.admin_alert(subject, body, key, also_to, sms)

    @rpc(expected_exceptions=expected)
    def set_alert_recipients(self, emails):
        return self.letters.set_alert_recipients(emails)

    # -- Twilio status callbacks (verified by the gateway) ----------------------------------------------------
    @rpc(expected_exceptions=expected)
    def sms_status_callback(self, message_sid, message_status, error_code=None):
        return self.sms_callbacks.status(message_sid, message_status, error_code)

    # -- private messages ------------------------------------------------------------------------------------
    @rpc(expected_exceptions=expected)
    def list_messages(self, owner, unread_only=False, limit=50, cursor=None):
        return self.inbox.list(owner, unread_only, limit, cursor)

    @rpc(expected_exceptions=expected)
    def mark_read(self, owner, message_ids):
        return self.inbox.mark_read(owner, message_ids)
