"""orders schema: currencies, exchange directions, orders with their status history, the audit log,
the outbox of events and the inbox of processed events.

The outbox, inbox and audit-log tables come from their one definition in libs/schema_parts.py (docs/migrations.md);
this migration was a plain SQL file with its own copy of them, applied with the same id (yoyo keys a migration by its
file name without extension), so a database that ran it does not run it again.
"""
from yoyo import step

from libs.schema_parts import audit_ddl, messaging_ddl  # noqa: F401  (a part may use only one of them)

steps = [step(
    """-- orders schema: currencies, exchange directions, orders with their status history, the audit log,
-- the outbox of events and the inbox of processed events.

CREATE TABLE currencies (
    code            text PRIMARY KEY CHECK (code ~ '^[A-Z0-9]{2,16}$'),
    name            text        NOT NULL,
    precision       smallint    NOT NULL CHECK (precision BETWEEN 0 AND 18),
    payment_system  text        NOT NULL,          -- adapter name in the payments service, e.g. 'sandbox'
    account         text        NOT NULL,          -- the exchanger's account customers pay into
    reserve         numeric(38, 18) NOT NULL DEFAULT 0 CHECK (reserve >= 0),
    active          boolean     NOT NULL DEFAULT true,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE directions (
    id                     serial PRIMARY KEY,
    currency_in            text NOT NULL REFERENCES currencies (code),
    currency_out           text NOT NULL REFERENCES currencies (code),
    exchange_type          text NOT NULL CHECK (exchange_type IN ('auto', 'semi_auto', 'manual')),
    -- "give rate_in of currency_in, get rate_out of currency_out"
    rate_in                numeric(38, 18) NOT NULL CHECK (rate_in > 0),
    rate_out               numeric(38, 18) NOT NULL CHECK (rate_out > 0),
    fee                    numeric(9, 6)   NOT NULL DEFAULT 0 CHECK (fee >= 0 AND fee < 100),  -- percent
    min_amount             numeric(38, 18) NOT NULL CHECK (min_amount > 0),
    max_amount             numeric(38, 18) NOT NULL,
    payment_window_minutes integer NOT NULL DEFAULT 30 CHECK (payment_window_minutes BETWEEN 1 AND 10080),
    active                 boolean NOT NULL DEFAULT true,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CHECK (currency_in <> currency_out),
    CHECK (max_amount >= min_amount),
    UNIQUE (currency_in, currency_out, exchange_type)
);

CREATE TABLE allowed_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO allowed_transitions (from_status, to_status) VALUES
    ('canceled', 'deleted'),
    ('completed', 'deleted'),
    ('expired', 'deleted'),
    ('expired', 'paid'),
    ('new', 'canceled'),
    ('new', 'deleted'),
    ('new', 'expired'),
    ('new', 'paid'),
    ('new', 'payment_claimed'),
    ('paid', 'canceled'),
    ('paid', 'completed'),
    ('paid', 'deleted'),
    ('paid', 'payout'),
    ('payment_claimed', 'canceled'),
    ('payment_claimed', 'completed'),
    ('payment_claimed', 'deleted'),
    ('payment_claimed', 'processing'),
    ('payout', 'completed'),
    ('payout', 'payout_error'),
    ('payout_error', 'canceled'),
    ('payout_error', 'completed'),
    ('payout_error', 'deleted'),
    ('payout_error', 'payout'),
    ('processing', 'canceled'),
    ('processing', 'completed'),
    ('processing', 'deleted');

CREATE TABLE orders (
    id             bigserial PRIMARY KEY,
    token          text NOT NULL UNIQUE,
    reference      text NOT NULL UNIQUE,
    request_id     text UNIQUE,                 -- idempotency key of the creating call
    direction_id   integer NOT NULL REFERENCES directions (id),
    exchange_type  text NOT NULL CHECK (exchange_type IN ('auto', 'semi_auto', 'manual')),
    currency_in    text NOT NULL,
    currency_out   text NOT NULL,
    amount_in      numeric(38, 18) NOT NULL CHECK (amount_in > 0),
    amount_out     numeric(38, 18) NOT NULL CHECK (amount_out > 0),
    rate_in        numeric(38, 18) NOT NULL,
    rate_out       numeric(38, 18) NOT NULL,
    fee            numeric(9, 6)   NOT NULL,
    fee_amount     numeric(38, 18) NOT NULL,    -- exchanger's margin in currency_out
    sms_fee        numeric(38, 18) NOT NULL DEFAULT 0,
    amount_received numeric(38, 18),
    pay_system     text NOT NULL,
    pay_account    text NOT NULL,
    email          text NOT NULL,
    recipient      text NOT NULL,
    phone          text,
    sms_opt_in     boolean NOT NULL DEFAULT false,
    partner_code   text,
    language       text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'ru')),
    status         text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'payment_claimed', 'processing', 'paid',
                       'payout', 'payout_error', 'completed', 'canceled', 'expired', 'deleted')),
    payment_flag   text CHECK (payment_flag IN ('partial', 'over', 'late')),
    notice         text,
    cancel_reason  text,
    version        integer NOT NULL DEFAULT 1,
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    completed_at   timestamptz
);
CREATE INDEX orders_status_created ON orders (status, created_at DESC);
CREATE INDEX orders_created ON orders (created_at DESC, id DESC);
CREATE INDEX orders_email ON orders (lower(email));
CREATE INDEX orders_expiring ON orders (expires_at) WHERE status = 'new';

-- The database enforces the state machine too: no code path can write a transition the table does not list.
CREATE FUNCTION check_order_transition() RETURNS trigger AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT EXISTS (
        SELECT 1 FROM allowed_transitions WHERE from_status = OLD.status AND to_status = NEW.status
    ) THEN
        RAISE EXCEPTION 'order %: transition % -> % is not allowed', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER orders_transition BEFORE UPDATE OF status ON orders
    FOR EACH ROW EXECUTE FUNCTION check_order_transition();

CREATE TABLE status_history (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES orders (id),
    from_status text,
    to_status   text NOT NULL,
    action      text NOT NULL,
    actor       text NOT NULL,
    note        text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX status_history_order ON status_history (order_id, id);

-- Append-only: who did what, to which order, from which status to which, and why.
"""
    + audit_ddl([('order_id', 'bigint'), ('from_status', 'text'), ('to_status', 'text')])
    + """CREATE INDEX audit_log_order ON audit_log (order_id, id);

"""
    + messaging_ddl()
)]
