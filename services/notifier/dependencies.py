"""nameko dependencies of the notifier, one per task, all on the container's one connection pool
(libs/dependencies.py):

- `letters`: decides and queues what events and callers ask for (order letters and SMS once per order, kind and
  channel; the partner's private message; account letters; admin alerts, a payout paid after it was resolved
  failed among them);
- `sender`: the sending loop (sender.py), in a thread started and stopped with the container;
- `send_log`: the log of every notification, and an operator's resend;
- `settings`: the notification settings (an admin changes them; other services hear of it);
- `sms_callbacks`: Twilio's delivery statuses (verified by the gateway);
- `inbox`: the private messages of partners.
"""
from libs import config
from libs.contracts import security
from libs.db import Database
from libs.dependencies import ServiceDependency, SharedDatabase, pool_size
from services.notifier import domain, metrics, schemas
from services.notifier.render import Renderer
from services.notifier.sender import Sender
from services.notifier.store import NotifierStore
from services.notifier.transports import SmtpMailer, TwilioSms


# -- the parts, from the container config (config.yml) ---------------------------------------------------------------
def _public_url(cfg):
    return (cfg.get("PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/")


def _concurrency(cfg):
    return int(cfg.get("NOTIFIER_CONCURRENCY") or 8)


def twilio_sms(cfg):
    return TwilioSms(cfg.get("TWILIO_ACCOUNT_SID"), cfg.get("TWILIO_AUTH_TOKEN"), cfg.get("TWILIO_FROM"),
                     base_url=cfg.get("TWILIO_BASE_URL"), timeout=float(cfg.get("TWILIO_TIMEOUT") or 10),
                     status_callback=_public_url(cfg) + "/api/v1/webhooks/twilio")


def smtp_mailer(cfg):
    return SmtpMailer(cfg.get("SMTP_URL") or "smtp://127.0.0.1:8025",
                      cfg.get("MAIL_FROM") or "Exchanger <noreply@exchanger.local>",
                      timeout=float(cfg.get("SMTP_TIMEOUT") or 30), pool_size=_concurrency(cfg))


def notifier_store(db, cfg, sms=None):
    sms = sms or twilio_sms(cfg)
    return NotifierStore(db, Renderer(_public_url(cfg), cfg.get("SITE_NAME") or "Exchanger"),
                         sms_configured=sms.configured,
                         email_max_attempts=int(cfg.get("NOTIFIER_EMAIL_MAX_ATTEMPTS") or 10),
                         sms_max_attempts=int(cfg.get("NOTIFIER_SMS_MAX_ATTEMPTS") or 5),
                         letters_per_hour=_int(cfg, "NOTIFIER_LETTERS_PER_RECIPIENT_HOUR", 10),
                         admin_sms_per_window=_int(cfg, "NOTIFIER_ADMIN_SMS_PER_WINDOW", 5),
                         admin_sms_window_seconds=_int(cfg, "NOTIFIER_ADMIN_SMS_WINDOW_SECONDS", 600))


def _int(cfg, key, default):
    value = cfg.get(key)
    return default if value in (None, "") else int(value)


def sender(db, cfg):
    sms = twilio_sms(cfg)
    return Sender(notifier_store(db, cfg, sms), smtp_mailer(cfg), sms, concurrency=_concurrency(cfg),
                  lease_seconds=float(cfg.get("NOTIFIER_LEASE_SECONDS") or 120),
                  retry_base=float(cfg.get("NOTIFIER_RETRY_BASE_SECONDS") or 5),
                  retry_cap=float(cfg.get("NOTIFIER_RETRY_CAP_SECONDS") or 600),
                  idle_wait=float(cfg.get("NOTIFIER_IDLE_WAIT") or 1.0))


def build(cfg, database=None):
    """Database, store and sender outside a container (tests, tools), from a config dict like config.yml's."""
    database = database or Database(url=cfg.get("DATABASE_URL") or config.database_url(), schema="notifier",
                                    maxconn=notifier_pool_size(cfg), application_name="notifier")
    loop = sender(database, cfg)
    return database, loop.store, loop


def notifier_pool_size(cfg):
    """One connection per worker plus one per concurrent send (each commits its outcome), plus two."""
    return pool_size(cfg, _concurrency(cfg))


class NotifierDatabase(SharedDatabase):
    """The container's one pool, sized for the sender's concurrent sends too."""

    def extra_connections(self, cfg):
        return _concurrency(cfg)


class NotifierDependency(ServiceDependency):
    shared_database = NotifierDatabase()


# -- letters ---------------------------------------------------------------------------------------------------------
class Letters:
    def __init__(self, store):
        self.store = store

    def order_events(self, consumer, event_type, payloads):
        """A batch of order events in ONE transaction; one {"duplicate", "queued"} per event."""
        schema = schemas.ORDER_EVENT_SCHEMAS[event_type]
        batch = [schemas.load_event(schema, payload) for payload in payloads]
        return self.store.consume_order_events(consumer, event_type,
                                               [(envelope["event_id"], data) for envelope, data in batch])

    def partner_credited(self, consumer, payload):
        """L5: orders credited a partner's commission -> a private message in the partner's inbox."""
        envelope, data = schemas.load_event(schemas.PARTNER_CREDITED_SCHEMA, payload)
        return self.store.consume_partner_credit(consumer, envelope["event_id"], data)

    def account_letter(self, consumer, kind, payload):
        """SIGNUP / RESET: the one-time link of a sign-up confirmation or a password reset (docs/partners.md)."""
        envelope, data = schemas.load_event(schemas.ACCOUNT_LETTER_SCHEMA, payload)
        return self.store.consume_account_letter(consumer, envelope["event_id"], kind, data)

    def account_notice(self, consumer, payload):
        """PASSWORD / WITHDRAWAL: a security letter to an account's address (password changed or reset, a
        withdrawal requested, with the link that confirms a new destination)."""
        envelope, data = schemas.load_event(schemas.ACCOUNT_NOTICE_SCHEMA, payload)
        return self.store.consume_account_notice(consumer, envelope["event_id"], data)

    def stuck_work_found(self, consumer, payload):
        """payments' or orders' `stuck_work_found`: one letter to the admin address listing the new items."""
        envelope, data = schemas.load_event(schemas.STUCK_WORK_FOUND_SCHEMA, payload)
        subject, body, key = domain.stuck_work_alert(data, envelope["event_id"])
        return self.store.consume_alert_event(consumer, envelope["event_id"], subject, body, key)

    def directions_frozen(self, consumer, payload):
        """the rate engine's `directions_frozen`: one letter to the admin address naming the directions a guard
        stopped and why (docs/rates.md, "Guards")."""
        envelope, data = schemas.load_event(schemas.DIRECTIONS_FROZEN_SCHEMA, payload)
        subject, body, key = domain.directions_frozen_alert(data, envelope["event_id"])
        return self.store.consume_alert_event(consumer, envelope["event_id"], subject, body, key)

    def payout_succeeded_after_resolve(self, consumer, payload):
        """payments' `payout_succeeded_after_resolve`: one letter to the admin address, the order or withdrawal
        that was paid after its payout was resolved failed, not to be paid again."""
        envelope, data = schemas.load_event(schemas.PAYOUT_LATE_SUCCESS_SCHEMA, payload)
        subject, body, key = domain.late_success_alert(data, envelope["event_id"])
        return self.store.consume_alert_event(consumer, envelope["event_id"], subject, body, key)

    def security_change(self, consumer, payload):
        """orders', payments' or the rate engine's `security_change` (libs/contracts/security.py): a letter to the admin address and a
        text to the admin phone where SMS is on. Always sent: no setting switches it off."""
        envelope, data = schemas.load_event(schemas.SECURITY_CHANGE_SCHEMA, payload)
        subject, body = security.change_text(data)
        return self.store.consume_alert_event(consumer, envelope["event_id"], subject, body,
                                              "security:%s" % envelope["event_id"], sms=True)

    def set_alert_recipients(self, emails):
        return {"changed": self.store.set_alert_recipients(schemas.load_alert_recipients(emails))}

    def admin_alert(self, subject, body, key=None, also_to=None, sms=False):
        """A security notice to the admin address (and to `also_to`); `key` names the occurrence so a repeated
        call queues nothing new (without it, the text is the key)."""
        schemas.check_alert(subject, body, key, also_to)
        if key is None:
            key = domain.alert_key(subject, body, also_to)
        settings = self.store.get_settings()
        recipients = [a for a in (settings["admin_email"], also_to) if a]
        return {"queued": self.store.queue_alert(subject, body, key, recipients, sms=bool(sms))}


class LettersProvider(NotifierDependency):
    def build(self, db, cfg):
        return Letters(notifier_store(db, cfg))


# -- the sending loop ------------------------------------------------------------------------------------------------
class SenderProvider(NotifierDependency):
    """The sender loop in a managed thread of the container: started with it, stopped with it (sends in flight
    finish and commit; on kill they are not waited for)."""

    def build(self, db, cfg):
        return sender(db, cfg)

    def start_api(self, loop):
        self.container.spawn_managed_thread(loop.run_forever)

    def stop_api(self, loop):
        loop.stop()

    def kill(self):
        self.api.stop(wait=0)


# -- the send log ----------------------------------------------------------------------------------------------------
class SendLog:
    def __init__(self, store):
        self.store = store

    def list(self, filters=None):
        return self.store.list_notifications(schemas.check_log_filters(filters))

    def get(self, notification_id):
        return self.store.get_notification(int(notification_id))

    def resend(self, notification_id, actor):
        schemas.check_operator(actor)
        return self.store.resend(int(notification_id), actor)


class SendLogProvider(NotifierDependency):
    def build(self, db, cfg):
        return SendLog(notifier_store(db, cfg))


# -- settings --------------------------------------------------------------------------------------------------------
class Settings:
    def __init__(self, store):
        self.store = store

    def get(self):
        return self.store.get_settings()

    def put(self, changes, actor, expected_version=None):
        schemas.check_admin(actor)
        return self.store.put_settings(schemas.load_settings_change(changes), actor, expected_version)


class SettingsProvider(NotifierDependency):
    def build(self, db, cfg):
        return Settings(notifier_store(db, cfg))


# -- Twilio status callbacks -----------------------------------------------------------------------------------------
class SmsCallbacks:
    def __init__(self, store):
        self.store = store

    def status(self, message_sid, message_status, error_code=None):
        """Apply one delivery status (the gateway checked Twilio's signature); statuses we do not track are
        ignored. Returns {"outcome": applied | duplicate | stale | unknown | ignored}."""
        schemas.check_message_sid(message_sid)
        if message_status not in domain.PROVIDER_STATUS_RANK:
            outcome = "ignored"
        else:
            outcome = self.store.sms_status(message_sid, message_status,
                                            str(error_code)[:16] if error_code else None)
        metrics.CALLBACKS.labels(outcome).inc()
        return {"outcome": outcome}


class SmsCallbacksProvider(NotifierDependency):
    def build(self, db, cfg):
        return SmsCallbacks(notifier_store(db, cfg))


# -- private messages ------------------------------------------------------------------------------------------------
class Inbox:
    def __init__(self, store):
        self.store = store

    def list(self, owner, unread_only=False, limit=50, cursor=None):
        schemas.check_owner(owner)
        return self.store.list_messages(owner, unread_only, limit, cursor)

    def mark_read(self, owner, message_ids):
        schemas.check_owner(owner)
        schemas.check_message_ids(message_ids)
        return {"marked": self.store.mark_read(owner, message_ids)}


class InboxProvider(NotifierDependency):
    def build(self, db, cfg):
        return Inbox(notifier_store(db, cfg))
