-- Customer accounts, the partner (affiliate) program and its commission ledger (docs/partners.md).
-- depends: 0001_initial

-- A customer account. The e-mail is unique whatever its case; sign-in needs it confirmed. Orders placed with the
-- confirmed e-mail belong to the account (joined by e-mail when read: orders.email has its own index).
CREATE TABLE accounts (
    id                  bigserial PRIMARY KEY,
    email               text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password_hash       text NOT NULL,              -- argon2id
    email_confirmed_at  timestamptz,
    language            text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'ru')),
    active              boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX accounts_email ON accounts (lower(email));

-- One-time tokens sent by e-mail: sign-up confirmation and password reset. Only the SHA-256 of the token is kept;
-- the token itself exists only in the event that asks the notifier for the letter, and in the letter.
-- A confirmation carries the password chosen at that sign-up: whoever reads the mailbox confirms that one.
CREATE TABLE account_tokens (
    id            bigserial PRIMARY KEY,
    token_hash    text NOT NULL UNIQUE,
    account_id    bigint NOT NULL REFERENCES accounts (id),
    purpose       text NOT NULL CHECK (purpose IN ('confirm', 'reset')),
    password_hash text,
    request_id    text UNIQUE,                     -- the gateway's call id: a repeated RPC sends no second letter
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((purpose = 'confirm') = (password_hash IS NOT NULL))
);
CREATE INDEX account_tokens_account ON account_tokens (account_id, purpose) WHERE used_at IS NULL;

-- Signed-in accounts: API bearer tokens and cabinet browser sessions. The gateway makes the random token and
-- sends only its SHA-256, so the token itself never leaves the gateway.
CREATE TABLE account_sessions (
    token_hash   text PRIMARY KEY,
    account_id   bigint NOT NULL REFERENCES accounts (id),
    kind         text NOT NULL CHECK (kind IN ('api', 'web')),
    ip           text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX account_sessions_account ON account_sessions (account_id) WHERE revoked_at IS NULL;

-- Commission rules. A rule is a percent of a base: the order's margin (`fee_amount`) or the amount exchanged
-- (valued in the to-currency). The most specific rule wins: direction, then partner, then the global one.
CREATE TABLE commission_settings (
    id             smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    percent        numeric(9, 6) NOT NULL DEFAULT 10 CHECK (percent >= 0 AND percent <= 100),
    base           text NOT NULL DEFAULT 'margin' CHECK (base IN ('margin', 'amount')),
    min_withdrawal numeric(38, 18) NOT NULL DEFAULT 10 CHECK (min_withdrawal > 0),
    version        integer NOT NULL DEFAULT 1,
    updated_by     text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO commission_settings (id) VALUES (1);

CREATE TABLE direction_commissions (
    direction_id integer PRIMARY KEY REFERENCES directions (id),
    percent      numeric(9, 6) NOT NULL CHECK (percent >= 0 AND percent <= 100),
    base         text NOT NULL DEFAULT 'margin' CHECK (base IN ('margin', 'amount')),
    updated_by   text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- A partner is an account with a referral code. percent/base: the partner's own rule (both or neither).
CREATE TABLE partners (
    id         bigserial PRIMARY KEY,
    account_id bigint NOT NULL UNIQUE REFERENCES accounts (id),
    code       text NOT NULL UNIQUE CHECK (code ~ '^[A-Z0-9]{4,32}$'),
    percent    numeric(9, 6) CHECK (percent >= 0 AND percent <= 100),
    base       text CHECK (base IN ('margin', 'amount')),
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((percent IS NULL) = (base IS NULL))
);
-- Orders carry the code as the customer's link gave it; codes are matched without regard to case.
CREATE INDEX orders_partner_code ON orders (upper(partner_code)) WHERE partner_code IS NOT NULL;

-- Visits through a partner's link (/?ref=CODE), one per visitor and code while the 30-day cookie lasts.
CREATE TABLE partner_clicks (
    id         bigserial PRIMARY KEY,
    partner_id bigint NOT NULL REFERENCES partners (id),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX partner_clicks_partner ON partner_clicks (partner_id, created_at);

-- Withdrawal requests: requested -> approved (paid by hand, or through a payout) | rejected (with a reason).
CREATE TABLE partner_withdrawals (
    id          bigserial PRIMARY KEY,
    partner_id  bigint NOT NULL REFERENCES partners (id),
    currency    text NOT NULL REFERENCES currencies (code),
    amount      numeric(38, 18) NOT NULL CHECK (amount > 0),
    to_account  text NOT NULL CHECK (length(to_account) BETWEEN 1 AND 200),
    status      text NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'approved', 'rejected')),
    method      text CHECK (method IN ('manual', 'payout')),
    reference   text,                                -- manual: the operator's transfer reference
    reason      text,                                -- rejected: told to the partner
    request_id  text UNIQUE,                         -- the gateway's call id (a repeated RPC adds nothing)
    decided_by  text,
    decided_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (status <> 'approved' OR method IS NOT NULL),
    CHECK (status <> 'rejected' OR reason IS NOT NULL)
);
CREATE INDEX partner_withdrawals_partner ON partner_withdrawals (partner_id, id DESC);
CREATE INDEX partner_withdrawals_open ON partner_withdrawals (id) WHERE status = 'requested';

-- The ledger: append-only, one row per movement, per partner and currency, with the running balance.
--   credit             +commission for a completed referred order (UNIQUE order_id: at most once per order)
--   withdrawal         -amount held when the partner asks for a withdrawal
--   withdrawal_return  +amount given back when the request is rejected (at most once per withdrawal)
-- balance_after is computed by the trigger below under a lock of the partner's row, and may never be negative:
-- two withdrawals racing for the same money cannot both pass, whatever the application does.
CREATE TABLE partner_ledger (
    id            bigserial PRIMARY KEY,
    partner_id    bigint NOT NULL REFERENCES partners (id),
    currency      text NOT NULL REFERENCES currencies (code),
    kind          text NOT NULL CHECK (kind IN ('credit', 'withdrawal', 'withdrawal_return')),
    amount        numeric(38, 18) NOT NULL,
    balance_after numeric(38, 18) NOT NULL CHECK (balance_after >= 0),
    order_id      bigint UNIQUE REFERENCES orders (id),
    withdrawal_id bigint REFERENCES partner_withdrawals (id),
    percent       numeric(9, 6),
    base          text,
    base_amount   numeric(38, 18),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'credit' AND amount > 0 AND order_id IS NOT NULL AND withdrawal_id IS NULL)
        OR (kind = 'withdrawal' AND amount < 0 AND order_id IS NULL AND withdrawal_id IS NOT NULL)
        OR (kind = 'withdrawal_return' AND amount > 0 AND order_id IS NULL AND withdrawal_id IS NOT NULL)),
    UNIQUE (withdrawal_id, kind)
);
CREATE INDEX partner_ledger_balance ON partner_ledger (partner_id, currency, id DESC);

CREATE FUNCTION partner_ledger_balance() RETURNS trigger AS $$
DECLARE
    previous numeric(38, 18);
BEGIN
    -- One writer per partner at a time; the next statement then sees every committed row before ours.
    PERFORM 1 FROM partners WHERE id = NEW.partner_id FOR UPDATE;
    SELECT balance_after INTO previous FROM partner_ledger
     WHERE partner_id = NEW.partner_id AND currency = NEW.currency ORDER BY id DESC LIMIT 1;
    NEW.balance_after := COALESCE(previous, 0) + NEW.amount;
    NEW.created_at := now();
    IF NEW.balance_after < 0 THEN
        RAISE EXCEPTION 'partner % balance in % would go negative (% + %)', NEW.partner_id, NEW.currency,
            COALESCE(previous, 0), NEW.amount USING ERRCODE = 'check_violation',
            CONSTRAINT = 'partner_ledger_balance_after_check';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql SET search_path FROM CURRENT;  -- the orders schema, whoever's session inserts

CREATE TRIGGER partner_ledger_balance BEFORE INSERT ON partner_ledger
    FOR EACH ROW EXECUTE FUNCTION partner_ledger_balance();

CREATE FUNCTION partner_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'partner_ledger is append-only: add a row instead';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER partner_ledger_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON partner_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION partner_ledger_append_only();
