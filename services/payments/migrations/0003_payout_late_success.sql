-- A provider call that answers `sent` after an operator resolved its payout `failed` (docs/payments.md, "Resolving
-- a payout by hand"): the payout stays `failed` (orders has moved the order on, and a status only moves forward
-- from `sending`), but the success is recorded here with the provider's id and announced as
-- payout_succeeded_after_resolve, never dropped.
-- depends: 0002_withdrawal_payouts
ALTER TABLE payouts
    ADD COLUMN late_success    boolean NOT NULL DEFAULT false,
    ADD COLUMN late_success_at timestamptz;
ALTER TABLE withdrawal_payouts
    ADD COLUMN late_success    boolean NOT NULL DEFAULT false,
    ADD COLUMN late_success_at timestamptz;
