-- Payouts of partner withdrawals (docs/partners.md): orders' `partner_payout_requested` asks for one, keyed by the event's
-- idempotency key (partner-withdrawal-<id>). Same discipline as order payouts: the row is committed as `sending`
-- before the provider is called, the key never changes, the reconciler resolves what stays `sending`.
-- depends: 0001_initial
CREATE TABLE withdrawal_payouts (
    id               bigserial PRIMARY KEY,
    withdrawal_id    bigint          NOT NULL UNIQUE,   -- orders.partner_withdrawals.id: one payout per withdrawal
    partner_id       bigint,
    idempotency_key  text            NOT NULL UNIQUE,
    system           text            NOT NULL,
    from_account     text            NOT NULL,
    to_account       text            NOT NULL,
    amount           numeric(38, 18) NOT NULL CHECK (amount > 0),
    currency         text            NOT NULL,
    reference        text            NOT NULL DEFAULT '',
    status           text            NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    provider_id      text,
    error            text,
    sends            integer         NOT NULL DEFAULT 0,
    checks           integer         NOT NULL DEFAULT 0,
    attempted_at     timestamptz     NOT NULL DEFAULT now(),
    created_at       timestamptz     NOT NULL DEFAULT now(),
    updated_at       timestamptz     NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    failed_at        timestamptz,
    resolved_by      text
);
CREATE INDEX withdrawal_payouts_sending ON withdrawal_payouts (attempted_at) WHERE status = 'sending';

-- Only forward: sending -> sent | failed (the function of 0001).
CREATE TRIGGER withdrawal_payouts_status BEFORE UPDATE OF status ON withdrawal_payouts
    FOR EACH ROW EXECUTE FUNCTION check_payout_status();
