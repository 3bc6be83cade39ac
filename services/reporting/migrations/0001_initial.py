"""reporting schema: the read model of orders (one row per order, latest snapshot by version) with payment and
payout summaries, the raw payments and payouts as announced, the inbox of processed events and an (unused)
outbox kept for symmetry with every other service schema.

The outbox, inbox and audit-log tables come from their one definition in libs/schema_parts.py (docs/migrations.md);
this migration was a plain SQL file with its own copy of them, applied with the same id (yoyo keys a migration by its
file name without extension), so a database that ran it does not run it again.
"""
from yoyo import step

from libs.schema_parts import audit_ddl, messaging_ddl  # noqa: F401  (a part may use only one of them)

steps = [step(
    """-- reporting schema: the read model of orders (one row per order, latest snapshot by version) with payment and
-- payout summaries, the raw payments and payouts as announced, the inbox of processed events and an (unused)
-- outbox kept for symmetry with every other service schema.

-- CSV formula-injection guard (reliability P19, ASVS 1.2.10): a text cell starting with = + - @ tab or CR gets a
-- leading apostrophe so a spreadsheet shows it as text. A plain SQL function is inlined by the planner, so COPY
-- stays fast. Only for free text typed by customers or operators: numbers and codes are never prefixed.
CREATE FUNCTION csv_safe(t text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN left(t, 1) IN ('=', '+', '-', '@', E'\\t', E'\\r') THEN '''' || t ELSE t END $$;

CREATE TABLE orders (
    id               bigint PRIMARY KEY,             -- the owner's order id
    version          integer     NOT NULL,           -- the owner's version: only a newer snapshot replaces this row
    status           text        NOT NULL,
    previous_status  text,                           -- from_status of the last transition ('new' for a cancel
    last_action      text,                           --   before payment): what "never paid" needs
    exchange_type    text        NOT NULL,
    direction_id     integer     NOT NULL,
    currency_in      text        NOT NULL,
    currency_out     text        NOT NULL,
    amount_in        numeric(38, 18) NOT NULL,
    amount_out       numeric(38, 18) NOT NULL,
    rate_in          numeric(38, 18) NOT NULL,
    rate_out         numeric(38, 18) NOT NULL,
    fee              numeric(38, 18),                -- percent of the amount out
    fee_amount       numeric(38, 18),                -- the exchanger's margin, in currency_out
    sms_fee          numeric(38, 18),
    amount_received  numeric(38, 18),
    payment_flag     text,
    email            text        NOT NULL,
    recipient        text        NOT NULL,
    phone            text,
    partner_code     text,
    language         text,
    reference        text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    expires_at       timestamptz,
    completed_at     timestamptz,
    -- Summaries of what the payments service announced (kept apart from the order snapshot: an order event never
    -- overwrites them, and a payment event that arrives before its order is kept in payments/payouts below).
    payments_count   integer     NOT NULL DEFAULT 0,
    payments_total   numeric(38, 18),
    last_payment_at  timestamptz,
    payout_status    text,
    payout_amount    numeric(38, 18),
    payout_at        timestamptz,
    -- When the applied event happened at its owner (read-model lag) and when we applied it.
    event_at         timestamptz,
    applied_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_created ON orders (created_at, id);
CREATE INDEX orders_updated ON orders (updated_at);
CREATE INDEX orders_completed ON orders (completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX orders_status ON orders (status);
CREATE INDEX orders_email ON orders (lower(email));
CREATE INDEX orders_direction ON orders (direction_id);
CREATE INDEX orders_partner ON orders (partner_code) WHERE partner_code IS NOT NULL;
CREATE INDEX orders_event_at ON orders (event_at);

-- Incoming payments and payouts as the payments service announces them. `data` keeps the whole payload, so a
-- field we do not model yet is not lost and a later migration can backfill it.
CREATE TABLE payments (
    id           text PRIMARY KEY,                   -- the payments service's id of the incoming payment
    order_id     bigint,                             -- NULL while unmatched
    status       text,
    amount       numeric(38, 18),
    currency     text,
    flag         text,
    received_at  timestamptz,
    version      bigint      NOT NULL DEFAULT 0,
    data         jsonb       NOT NULL,
    event_at     timestamptz,
    applied_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_order ON payments (order_id);

CREATE TABLE payouts (
    id           text PRIMARY KEY,                   -- the payments service's payout id
    order_id     bigint,
    status       text,
    amount       numeric(38, 18),
    currency     text,
    error        text,
    sent_at      timestamptz,
    version      bigint      NOT NULL DEFAULT 0,
    data         jsonb       NOT NULL,
    event_at     timestamptz,
    applied_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payouts_order ON payouts (order_id);

"""
    + messaging_ddl()
    + """CREATE INDEX processed_events_age ON processed_events (processed_at);
"""
)]
