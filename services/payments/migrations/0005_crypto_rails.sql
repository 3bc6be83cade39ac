-- Real chains behind the adapter port (docs/chains.md): per-order deposit addresses, the followed chain's recent
-- block hashes (the cursor and what a reorganisation is detected against), deposits seen with their depth, and the
-- signed transactions of payouts (hash and raw bytes committed before any broadcast).
-- depends: 0004_stuck_alerts

-- One deposit address per order of a chain currency: the customer pays to it, no memo to type.
CREATE TABLE chain_addresses (
    order_id    bigint      PRIMARY KEY,
    system      text        NOT NULL,
    address     text        NOT NULL,
    reference   text        NOT NULL,          -- the order's reference: what matching finds the order by
    derivation  text,                          -- how the key of the address is found (EVM: the HD path)
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (system, address)
);

-- The blocks the follower has read, newest last. The cursor is the highest row; on a hash mismatch the rows above
-- the fork are deleted and those heights read again. Only the account's poll-lock holder writes here.
CREATE TABLE chain_blocks (
    system  text    NOT NULL,
    height  bigint  NOT NULL,
    hash    text    NOT NULL,
    PRIMARY KEY (system, height)
);

-- Incoming transfers to deposit addresses, as the chain shows them now. `credited` once the required depth was
-- reached (then the payment row exists, external_id = txid:index). `removed`: its block left the chain before the
-- depth and the transfer is not in the new chain (withdrawn from the order); `reversed`: the same after crediting
-- (an alert: money credited is gone).
CREATE TABLE chain_deposits (
    id             bigserial   PRIMARY KEY,
    system         text        NOT NULL,
    txid           text        NOT NULL,
    output_index   integer     NOT NULL,       -- Litecoin: vout; EVM: the log index
    address        text        NOT NULL,
    order_id       bigint,
    reference      text        NOT NULL,
    amount         numeric(38, 18) NOT NULL,
    currency       text        NOT NULL,
    block_height   bigint,                     -- NULL: not in the chain we follow (unconfirmed or reorganised out)
    block_hash     text,
    confirmations  integer     NOT NULL DEFAULT 0,
    required       integer     NOT NULL,
    status         text        NOT NULL DEFAULT 'confirming'
                   CHECK (status IN ('confirming', 'credited', 'removed', 'reversed')),
    payment_id     bigint,
    seen_at        timestamptz NOT NULL DEFAULT now(),
    mined_at       timestamptz,                -- the block's time: the payment's time
    credited_at    timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (system, txid, output_index)
);
CREATE INDEX chain_deposits_order ON chain_deposits (order_id);
CREATE INDEX chain_deposits_open ON chain_deposits (system) WHERE status IN ('confirming', 'removed');

-- Signed payout transactions. A row is committed before its bytes are broadcast; a crash is recovered by sending
-- the same bytes again (same hash: it cannot pay twice). A fee bump adds a row that spends the same inputs (Litecoin)
-- or uses the same nonce (EVM) and names the one it replaces; at most one of a payout's rows can ever be mined.
CREATE TABLE chain_txs (
    id               bigserial   PRIMARY KEY,
    idempotency_key  text        NOT NULL,     -- the payout's key (payouts or withdrawal_payouts)
    system           text        NOT NULL,
    txid             text        NOT NULL,
    raw              text        NOT NULL,     -- the signed transaction, hex
    to_address       text        NOT NULL,
    amount           numeric(38, 18) NOT NULL,
    currency         text        NOT NULL,
    fee              numeric(38, 18) NOT NULL, -- the network fee this transaction pays (in the chain's coin)
    nonce            bigint,                   -- EVM: the sender's nonce
    replaces         text,                     -- the txid this one replaces (fee bump)
    broadcasts       integer     NOT NULL DEFAULT 0,
    last_broadcast_at timestamptz,
    last_error       text,
    confirmations    integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (system, txid)
);
CREATE INDEX chain_txs_key ON chain_txs (idempotency_key, id);
CREATE UNIQUE INDEX chain_txs_one_first_per_key ON chain_txs (idempotency_key) WHERE replaces IS NULL;

-- EVM: the next nonce of each sending address, taken under this row's lock (FOR UPDATE) so two payouts never share
-- or skip one.
CREATE TABLE chain_nonces (
    system      text   NOT NULL,
    address     text   NOT NULL,
    next_nonce  bigint NOT NULL,
    PRIMARY KEY (system, address)
);
