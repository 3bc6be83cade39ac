"""payments schema: the exchanger's payment accounts and their poll cursors, a copy of what payments needs to know
about orders, incoming payments, payouts, the operators' audit log, the outbox and the inbox.
Money is NUMERIC(38,18); provider times are timestamptz.

The outbox, inbox and audit-log tables come from their one definition in libs/schema_parts.py (docs/migrations.md);
this migration was a plain SQL file with its own copy of them, applied with the same id (yoyo keys a migration by its
file name without extension), so a database that ran it does not run it again.
"""
from yoyo import step

from libs.schema_parts import audit_ddl, messaging_ddl  # noqa: F401  (a part may use only one of them)

steps = [step(
    """-- payments schema: the exchanger's payment accounts and their poll cursors, a copy of what payments needs to know
-- about orders, incoming payments, payouts, the operators' audit log, the outbox and the inbox.
-- Money is NUMERIC(38,18); provider times are timestamptz.

-- One row: a random prefix of this installation's payout idempotency keys. Order ids restart after a database
-- reset or in a second environment; with the prefix, "payout-<order>-<attempt>" of one installation can never
-- collide with another's at a shared provider (which would look like an already-made payout).
CREATE TABLE installation (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    key_prefix  text NOT NULL DEFAULT substr(replace(gen_random_uuid()::text, '-', ''), 1, 10),
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO installation DEFAULT VALUES;

-- Payment accounts (configured in config.yml / PAYMENT_ACCOUNTS, synced here at start) and their poll state.
-- Only the poller that holds the account's advisory lock writes cursor, cursor_log and balance.
CREATE TABLE accounts (
    id            serial PRIMARY KEY,
    system        text        NOT NULL,                 -- payment system = adapter configuration name
    account       text        NOT NULL,                 -- the account id at the payment system
    currency      text        NOT NULL,
    payout        boolean     NOT NULL DEFAULT true,    -- payouts in this currency are sent from this account
    cursor        text,                                 -- provider position after the last entry read
    cursor_log    jsonb       NOT NULL DEFAULT '[]',    -- earlier positions: each poll re-reads from the oldest
    balance       numeric(38, 18),
    balance_at    timestamptz,
    polled_at     timestamptz,                          -- last poll attempt
    polled_ok_at  timestamptz,                          -- last successful poll
    poll_error    text,
    ingested      bigint      NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (system, account)
);
CREATE UNIQUE INDEX accounts_one_payout_account ON accounts (currency) WHERE payout;

-- What payments knows about orders, from order events only (it never reads the orders schema).
-- Applied when the event's version is newer than the stored one, so late or repeated events change nothing.
CREATE TABLE orders (
    id             bigint PRIMARY KEY,
    version        integer         NOT NULL,
    reference      text            NOT NULL UNIQUE,
    status         text            NOT NULL,
    exchange_type  text            NOT NULL,
    pay_system     text            NOT NULL,
    pay_account    text            NOT NULL,
    currency_in    text            NOT NULL,
    amount_in      numeric(38, 18) NOT NULL,
    currency_out   text            NOT NULL,
    amount_out     numeric(38, 18) NOT NULL,
    rate_in        numeric(38, 18) NOT NULL,
    rate_out       numeric(38, 18) NOT NULL,
    fee            numeric(9, 6)   NOT NULL DEFAULT 0,
    recipient      text            NOT NULL,
    expires_at     timestamptz     NOT NULL,
    updated_at     timestamptz     NOT NULL DEFAULT now()
);

-- Incoming payments. UNIQUE(account_id, external_id) + INSERT ... ON CONFLICT DO NOTHING: a payment seen again
-- (overlap window, two pollers, a restart) is credited once; only the inserting transaction announces it.
--   matched   : announced to orders as payment_received (order_id set)
--   unmatched : waits for an operator (no order, wrong currency/account, order cannot take it, rejected by orders)
--   manual    : the reference is a manual order's: shown on the order, the operator checks by hand
CREATE TABLE payments (
    id                 bigserial PRIMARY KEY,
    account_id         integer         NOT NULL REFERENCES accounts (id),
    external_id        text            NOT NULL,
    amount             numeric(38, 18) NOT NULL CHECK (amount > 0),
    currency           text            NOT NULL,
    reference          text            NOT NULL DEFAULT '',
    match_reference    text,                            -- the order reference found in `reference`, if any
    counterparty       text,
    occurred_at        timestamptz     NOT NULL,        -- the provider's time of the payment
    provider_cursor    text,
    detected_at        timestamptz     NOT NULL DEFAULT now(),
    status             text            NOT NULL CHECK (status IN ('matched', 'unmatched', 'manual')),
    order_id           bigint,                          -- the order credited (matched) or noted (manual)
    candidate_order_id bigint,                          -- unmatched: the order the reference names, if any
    flag               text CHECK (flag IN ('partial', 'over', 'late')),
    reason_code        text,
    reason             text,
    assigned_by        text,
    updated_at         timestamptz     NOT NULL DEFAULT now(),
    UNIQUE (account_id, external_id),
    CHECK (status <> 'matched' OR order_id IS NOT NULL)
);
CREATE INDEX payments_unmatched ON payments (id DESC) WHERE status = 'unmatched';
CREATE INDEX payments_unmatched_reference ON payments (match_reference) WHERE status = 'unmatched';
CREATE INDEX payments_order ON payments (order_id);

-- Payouts. At most one live (sending or sent) payout per order; a failed attempt stays as history and only an
-- operator's retry (order payout_error -> payout) creates the next attempt with the next key.
-- The row is committed as `sending` before the provider is called; the key is deterministic.
CREATE TABLE payouts (
    id               bigserial PRIMARY KEY,
    order_id         bigint          NOT NULL,
    attempt          integer         NOT NULL CHECK (attempt >= 1),
    idempotency_key  text            NOT NULL UNIQUE,
    order_version    integer         NOT NULL,
    system           text            NOT NULL,
    from_account     text            NOT NULL,
    to_account       text            NOT NULL,
    amount           numeric(38, 18) NOT NULL CHECK (amount > 0),
    currency         text            NOT NULL,
    reference        text            NOT NULL DEFAULT '',
    received         numeric(38, 18),                   -- what the order's matched payments brought in
    status           text            NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    provider_id      text,
    error            text,
    sends            integer         NOT NULL DEFAULT 0, -- provider calls made with this key
    checks           integer         NOT NULL DEFAULT 0, -- lookups by key
    attempted_at     timestamptz     NOT NULL DEFAULT now(),
    created_at       timestamptz     NOT NULL DEFAULT now(),
    updated_at       timestamptz     NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    failed_at        timestamptz,
    resolved_by      text,
    UNIQUE (order_id, attempt)
);
CREATE UNIQUE INDEX payouts_one_live_per_order ON payouts (order_id) WHERE status <> 'failed';
CREATE INDEX payouts_sending ON payouts (attempted_at) WHERE status = 'sending';
CREATE INDEX payouts_status ON payouts (status, id DESC);

-- A payout's status only moves forward: sending -> sent | failed.
CREATE FUNCTION check_payout_status() RETURNS trigger AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (OLD.status = 'sending' AND NEW.status IN ('sent', 'failed'))
    THEN
        RAISE EXCEPTION 'payout %: status % -> % is not allowed', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER payouts_status BEFORE UPDATE OF status ON payouts
    FOR EACH ROW EXECUTE FUNCTION check_payout_status();

-- Append-only: operator actions on payments and payouts.
"""
    + audit_ddl([('payment_id', 'bigint'), ('payout_id', 'bigint'), ('order_id', 'bigint')])
    + messaging_ddl()
)]
