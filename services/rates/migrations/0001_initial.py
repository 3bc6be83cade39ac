"""rates schema: the rate sources and their last values, the formulas of directions with their verdicts and
history, the history of every published rate, the outbox and inbox of events and the audit of operators' actions
(docs/rates.md). The outbox, inbox and audit-log tables come from libs/schema_parts.py (docs/migrations.md)."""
from yoyo import step

from libs.schema_parts import append_only_ddl, audit_ddl, messaging_ddl

steps = [step(
    """
-- One row per configured source (services/rates/config.yml SOURCES): its settings as last started, and how its
-- polling goes. The values it gave are in source_values.
CREATE TABLE sources (
    name             text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,30}$'),
    kind             text        NOT NULL,
    url              text,
    poll_seconds     numeric     NOT NULL CHECK (poll_seconds > 0),
    timeout_seconds  numeric     NOT NULL CHECK (timeout_seconds > 0),
    max_age_seconds  numeric     NOT NULL CHECK (max_age_seconds > 0),
    last_polled_at   timestamptz,
    last_ok_at       timestamptz,
    last_error       text,
    last_error_at    timestamptz,
    errors_in_row    integer     NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The last value of each symbol of a source: the source's own time of it (NULL when it states none) and when we
-- fetched it (or an operator set it: set_by). Freshness is by source_time, else fetched_at (domain/sources.py).
CREATE TABLE source_values (
    source       text        NOT NULL REFERENCES sources (name) ON DELETE CASCADE,
    symbol       text        NOT NULL,
    value        numeric     NOT NULL CHECK (value > 0),
    source_time  timestamptz,
    fetched_at   timestamptz NOT NULL,
    set_by       text,
    PRIMARY KEY (source, symbol)
);

-- The formula of a direction (at most one) and the engine's last verdict on it. accepted_value is the last value
-- that passed the guards or that an operator accepted: the jump guard compares with it. published_* is what was
-- last announced to orders (rates_computed), with the sequence number orders compares and sets by.
CREATE TABLE formulas (
    direction_id        bigint PRIMARY KEY,
    currency_in         text        NOT NULL,
    currency_out        text        NOT NULL,
    precision_in        integer     NOT NULL CHECK (precision_in BETWEEN 0 AND 18),
    precision_out       integer     NOT NULL CHECK (precision_out BETWEEN 0 AND 18),
    expression          text        NOT NULL,
    quote               text        NOT NULL CHECK (quote IN ('out_per_in', 'in_per_out')),
    max_jump_percent    numeric     NOT NULL CHECK (max_jump_percent > 0),
    max_spread_percent  numeric     NOT NULL CHECK (max_spread_percent > 0),
    version             integer     NOT NULL DEFAULT 1,
    accepted_value      numeric,
    value               numeric,
    rate_in             numeric,
    rate_out            numeric,
    frozen              boolean     NOT NULL DEFAULT false,
    frozen_code         text,
    frozen_reason       text,
    frozen_since        timestamptz,
    computed_at         timestamptz,
    seq                 bigint      NOT NULL DEFAULT 0,
    published_rate_in   numeric,
    published_rate_out  numeric,
    published_frozen    boolean,
    published_reason    text,
    updated_by          text,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Who changed which formula when, from what to what (removals too).
CREATE TABLE formula_history (
    id            bigserial PRIMARY KEY,
    direction_id  bigint      NOT NULL,
    version       integer     NOT NULL,
    actor         text        NOT NULL,
    actor_role    text,
    actor_ip      text,
    before        jsonb,
    after         jsonb,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX formula_history_direction ON formula_history (direction_id, id);

-- Every rate the engine published for a direction, and every freeze and thaw (the panel's chart).
CREATE TABLE rate_history (
    id            bigserial PRIMARY KEY,
    direction_id  bigint      NOT NULL,
    seq           bigint      NOT NULL,
    value         numeric,
    rate_in       numeric,
    rate_out      numeric,
    frozen        boolean     NOT NULL,
    reason        text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rate_history_direction ON rate_history (direction_id, id);
"""
    + append_only_ddl("formula_history")
    + append_only_ddl("rate_history")
    + messaging_ddl()
    + audit_ddl([("direction_id", "bigint"), ("source", "text")])
)]
