-- A partner withdrawal approved with method=payout ends `paid` (payments' withdrawal_payout_sent) or `failed`
-- (withdrawal_payout_failed: the amount returns to the balance, a `withdrawal_return` row). docs/partners.md.
-- depends: 0002_accounts_partners
ALTER TABLE partner_withdrawals DROP CONSTRAINT partner_withdrawals_status_check;
ALTER TABLE partner_withdrawals ADD CONSTRAINT partner_withdrawals_status_check
    CHECK (status IN ('requested', 'approved', 'rejected', 'paid', 'failed'));
ALTER TABLE partner_withdrawals ADD COLUMN provider_id text;   -- paid through a payout: the provider's transfer
ALTER TABLE partner_withdrawals ADD COLUMN settled_at timestamptz;
ALTER TABLE partner_withdrawals ADD CONSTRAINT partner_withdrawals_settled_by_payout
    CHECK (status NOT IN ('paid', 'failed') OR method = 'payout');
