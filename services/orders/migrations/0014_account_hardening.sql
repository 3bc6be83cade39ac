-- Customer and partner accounts hardened (docs/security.md, "Customer and partner accounts"; docs/partners.md):
-- sign-in throttling per account and address, TOTP for accounts, confirmed withdrawal destinations, a limit on
-- wrong passwords at the sign-up confirmation.
-- depends: 0011_direction_rate_state

-- Failed sign-ins per (lower(e-mail), client address), existing account or not. An attempt is counted BEFORE the
-- password is checked, in one statement that also refuses it while blocked_until is ahead (store/accounts.py,
-- claim_sign_in_attempt), so parallel requests cannot all pass a "check, then count"; a success resets the row.
-- Keyed by address too, so an attacker elsewhere never locks the owner out.
CREATE TABLE account_signin_throttle (
    email_key     text NOT NULL,
    ip            text NOT NULL,
    failures      integer NOT NULL DEFAULT 0,
    blocked_until timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (email_key, ip)
);
CREATE INDEX account_signin_throttle_old ON account_signin_throttle (updated_at);

-- The second factor of an account (optional): an RFC 6238 secret; confirmed_at NULL = enrolment started.
-- last_step: the last accepted 30-second step, so a code works once (replay refused).
CREATE TABLE account_totp (
    account_id   bigint PRIMARY KEY REFERENCES accounts (id),
    secret       text NOT NULL,
    confirmed_at timestamptz,
    last_step    bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Where a partner's withdrawals may go: a (currency, account) confirmed from the account's mailbox by a one-time
-- link (only the SHA-256 of the link's token is kept). A withdrawal to an unconfirmed one waits: approving it is
-- refused until the link is used.
CREATE TABLE withdrawal_destinations (
    id           bigserial PRIMARY KEY,
    partner_id   bigint NOT NULL REFERENCES partners (id),
    currency     text NOT NULL REFERENCES currencies (code),
    to_account   text NOT NULL CHECK (length(to_account) BETWEEN 1 AND 200),
    confirmed_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_id, currency, to_account)
);

CREATE TABLE withdrawal_destination_tokens (
    id             bigserial PRIMARY KEY,
    token_hash     text NOT NULL UNIQUE,
    destination_id bigint NOT NULL REFERENCES withdrawal_destinations (id),
    withdrawal_id  bigint REFERENCES partner_withdrawals (id),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX withdrawal_destination_tokens_open ON withdrawal_destination_tokens (destination_id)
    WHERE used_at IS NULL;

-- Destinations that withdrawals already used before this migration are taken as confirmed: the partner asked for
-- them under the old rules, and no letter would reach them now.
INSERT INTO withdrawal_destinations (partner_id, currency, to_account, confirmed_at)
SELECT DISTINCT partner_id, currency, to_account, now() FROM partner_withdrawals
ON CONFLICT DO NOTHING;

-- Wrong passwords typed at a sign-up confirmation: the token ends after a few.
ALTER TABLE account_tokens ADD COLUMN failed_attempts integer NOT NULL DEFAULT 0;
