-- A payout resolved `failed` by an operator that the provider then reported sent (payments'
-- payout_succeeded_after_resolve; docs/payments.md, "Resolving a payout by hand"): the money went out, so the order
-- or the partner withdrawal is flagged and never paid again.
-- - orders: the flag and the provider's transfer; the status is left as it is (an operator finalizes), but no
--   further payout is allowed while the flag is set (services/orders/domain/orders.py).
-- - partner_withdrawals: the same flag; if the failed payout had already given the amount back to the balance, a
--   `withdrawal_late_paid` ledger row (-) takes it out again, at most once per withdrawal (UNIQUE(withdrawal_id,
--   kind)). What the balance no longer held when the news came is kept in late_paid_shortfall for the admin.
--   docs/partners.md, "Withdrawals".
-- depends: 0009_stuck_alerts
ALTER TABLE orders ADD COLUMN payout_late_success_at timestamptz;
ALTER TABLE orders ADD COLUMN payout_late_success_provider_id text;

ALTER TABLE partner_withdrawals ADD COLUMN late_paid_at timestamptz;
ALTER TABLE partner_withdrawals ADD COLUMN late_paid_provider_id text;
ALTER TABLE partner_withdrawals ADD COLUMN late_paid_shortfall numeric(38, 18) CHECK (late_paid_shortfall > 0);

ALTER TABLE partner_ledger DROP CONSTRAINT partner_ledger_kind_check;
ALTER TABLE partner_ledger ADD CONSTRAINT partner_ledger_kind_check
    CHECK (kind IN ('credit', 'withdrawal', 'withdrawal_return', 'withdrawal_late_paid'));
ALTER TABLE partner_ledger DROP CONSTRAINT partner_ledger_check;
ALTER TABLE partner_ledger ADD CONSTRAINT partner_ledger_check
    CHECK ((kind = 'credit' AND amount > 0 AND order_id IS NOT NULL AND withdrawal_id IS NULL)
        OR (kind = 'withdrawal' AND amount < 0 AND order_id IS NULL AND withdrawal_id IS NOT NULL)
        OR (kind = 'withdrawal_return' AND amount > 0 AND order_id IS NULL AND withdrawal_id IS NOT NULL)
        OR (kind = 'withdrawal_late_paid' AND amount < 0 AND order_id IS NULL AND withdrawal_id IS NOT NULL));
