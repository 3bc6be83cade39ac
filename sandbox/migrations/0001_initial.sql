-- The sandbox payment system's ledger (schema "sandbox"; yoyo runs this with search_path=sandbox).
-- Money is NUMERIC(38,18); a balance never goes below zero.

CREATE TABLE accounts (
    account     TEXT PRIMARY KEY,
    currency    TEXT NOT NULL,
    precision   SMALLINT NOT NULL CHECK (precision BETWEEN 0 AND 18),
    balance     NUMERIC(38, 18) NOT NULL DEFAULT 0 CHECK (balance >= 0),
    owner       TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX accounts_owner ON accounts (owner, account);

-- One row per executed transfer. The UNIQUE idempotency key is what makes a payout happen at most once,
-- also when identical requests race (the loser's INSERT ... ON CONFLICT finds the winner's row).
CREATE TABLE transfers (
    id               UUID PRIMARY KEY,
    from_account     TEXT NOT NULL REFERENCES accounts (account),
    to_account       TEXT NOT NULL REFERENCES accounts (account),
    amount           NUMERIC(38, 18) NOT NULL CHECK (amount > 0),
    currency         TEXT NOT NULL,
    reference        TEXT NOT NULL DEFAULT '',
    idempotency_key  TEXT UNIQUE,
    status           TEXT NOT NULL DEFAULT 'completed',
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (from_account <> to_account)
);

-- Two entries per transfer: "out" on the payer's account, "in" on the payee's. "cursor" is the history cursor.
-- Entries of one account are inserted while that account's row is locked FOR UPDATE and the lock is held until
-- commit, so within one account the cursors become visible in increasing order: a poller never misses an entry
-- by reading "after" a cursor that a slower transaction later fills in below.
CREATE TABLE entries (
    cursor        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            UUID NOT NULL UNIQUE,
    account       TEXT NOT NULL REFERENCES accounts (account),
    transfer_id   UUID NOT NULL REFERENCES transfers (id),
    type          TEXT NOT NULL CHECK (type IN ('in', 'out')),
    counterparty  TEXT NOT NULL,
    amount        NUMERIC(38, 18) NOT NULL CHECK (amount > 0),
    currency      TEXT NOT NULL,
    reference     TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    UNIQUE (transfer_id, type)
);

CREATE INDEX entries_account_cursor ON entries (account, cursor);

-- Fault switches: the next `remaining` matching calls fail. Kept in the database so that every worker process
-- sees them; consumed with an atomic UPDATE.
CREATE TABLE faults (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation   TEXT NOT NULL CHECK (operation IN ('transfer', 'history', 'balance', 'lookup', 'any')),
    mode        TEXT NOT NULL CHECK (mode IN ('error', 'timeout', 'refuse')),
    apply       TEXT NOT NULL DEFAULT 'before' CHECK (apply IN ('before', 'after')),
    count       INTEGER NOT NULL CHECK (count > 0),
    remaining   INTEGER NOT NULL CHECK (remaining >= 0),
    delay_s     NUMERIC(10, 3) NOT NULL DEFAULT 30 CHECK (delay_s >= 0),
    account     TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX faults_active ON faults (id) WHERE remaining > 0;
