"""notifier schema: notification settings, the log of every letter, SMS and private message (and each attempt),
Twilio status callbacks, the in-app inbox, the outbox of events and the inbox of processed events.

The outbox, inbox and audit-log tables come from their one definition in libs/schema_parts.py (docs/migrations.md);
this migration was a plain SQL file with its own copy of them, applied with the same id (yoyo keys a migration by its
file name without extension), so a database that ran it does not run it again.
"""
from yoyo import step

from libs.schema_parts import audit_ddl, messaging_ddl  # noqa: F401  (a part may use only one of them)

steps = [step(
    """-- notifier schema: notification settings, the log of every letter, SMS and private message (and each attempt),
-- Twilio status callbacks, the in-app inbox, the outbox of events and the inbox of processed events.

-- One row: what is sent and to whom (docs/notifier.md, the matrix). `announced` is the last snapshot sent as settings_changed.
CREATE TABLE settings (
    id               smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    sms_enabled      boolean NOT NULL DEFAULT false,
    admin_email      text,
    admin_phone      text,
    admin_language   text NOT NULL DEFAULT 'en' CHECK (admin_language IN ('en', 'ru')),
    -- percent added to the order's fee when the customer opts in to SMS (applied by orders)
    customer_sms_fee numeric(38, 18) NOT NULL DEFAULT 0 CHECK (customer_sms_fee >= 0 AND customer_sms_fee < 100),
    enabled_kinds    text[] NOT NULL DEFAULT ARRAY['L1', 'L2', 'L3', 'L4', 'L5', 'L6', 'L7', 'L8', 'L9', 'L10',
                                                   'S1', 'S2', 'S3', 'S4', 'S5'],
    version          integer NOT NULL DEFAULT 1,
    announced        jsonb,
    updated_by       text,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
INSERT INTO settings (id) VALUES (1);

-- Append-only history of settings changes: who, from where, before and after.
CREATE TABLE settings_history (
    id         bigserial PRIMARY KEY,
    version    integer NOT NULL,
    actor      text NOT NULL,
    actor_role text,
    actor_ip   text,
    before     jsonb NOT NULL,
    after      jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER settings_history_no_change BEFORE UPDATE OR DELETE ON settings_history
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();

-- The send log. One row per (order, kind, channel), created in the consumer's transaction together with its
-- inbox claim; the provider is called only after that commit (status pending -> sending -> sent | failed).
CREATE TABLE notifications (
    id                 bigserial PRIMARY KEY,
    dedupe_key         text NOT NULL UNIQUE,       -- order:<id>:<kind>:<channel>, or alert:<key>:<recipient>
    order_id           bigint,
    kind               text NOT NULL,              -- L1..L10, S1..S5, ALERT
    channel            text NOT NULL CHECK (channel IN ('email', 'sms', 'inbox')),
    audience           text NOT NULL CHECK (audience IN ('customer', 'admin', 'partner')),
    recipient          text NOT NULL,
    language           text NOT NULL CHECK (language IN ('en', 'ru')),
    subject            text,
    body_text          text NOT NULL,
    body_html          text,
    status             text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts           integer NOT NULL DEFAULT 0,
    max_attempts       integer NOT NULL CHECK (max_attempts >= 1),
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    lease_until        timestamptz,                -- a 'sending' row past this is reclaimed (its sender died)
    outcome_unknown    boolean NOT NULL DEFAULT false,  -- the last attempt may have reached the provider
    last_error         text,
    provider_id        text,                       -- SMTP Message-ID or Twilio MessageSid
    provider_status    text,                       -- Twilio delivery status (create response, then callbacks)
    provider_status_at timestamptz,
    event_id           uuid,                       -- the event that caused it
    resends            integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    sent_at            timestamptz
);
CREATE UNIQUE INDEX notifications_once ON notifications (order_id, kind, channel) WHERE order_id IS NOT NULL;
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_leased ON notifications (lease_until) WHERE status = 'sending';
CREATE INDEX notifications_order ON notifications (order_id, id);
CREATE INDEX notifications_created ON notifications (id DESC);
CREATE INDEX notifications_provider ON notifications (provider_id) WHERE provider_id IS NOT NULL;
CREATE INDEX notifications_unsent ON notifications (channel, status) WHERE status <> 'sent';  -- backlog metrics

-- Every attempt and operator action on a notification (what the log page shows under a row).
CREATE TABLE notification_attempts (
    id              bigserial PRIMARY KEY,
    notification_id bigint NOT NULL REFERENCES notifications (id),
    attempt         integer NOT NULL,
    outcome         text NOT NULL,   -- sent, retry, failed, reconciled, resend, status
    detail          text,
    actor           text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_attempts_notification ON notification_attempts (notification_id, id);

-- Twilio status callbacks, deduplicated on (MessageSid, MessageStatus).
CREATE TABLE sms_callbacks (
    message_sid    text NOT NULL,
    message_status text NOT NULL,
    error_code     text,
    applied        boolean NOT NULL,  -- false: unknown sid or a status older than the one we have
    received_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_sid, message_status)
);

-- Private messages (the in-app inbox): partners now (L5), customers with accounts later.
CREATE TABLE messages (
    id              bigserial PRIMARY KEY,
    owner           text NOT NULL,              -- 'partner:<id>', later 'customer:<id>'
    kind            text NOT NULL,
    order_id        bigint,
    subject         text NOT NULL,
    body            text NOT NULL,
    notification_id bigint UNIQUE REFERENCES notifications (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    read_at         timestamptz
);
CREATE INDEX messages_owner ON messages (owner, id DESC);
CREATE INDEX messages_unread ON messages (owner) WHERE read_at IS NULL;

"""
    + messaging_ddl()
)]
