-- Reserves are held, not only checked (docs/architecture.md, "Reserves"): an open order holds its amount out of the
-- to-currency's reserve, so orders that together exceed it cannot all be accepted.
--   currencies.held      the sum of what open orders hold; available = reserve - held (below 0 when the balance
--                        fell under what is owed: then no new order fits until it recovers)
--   orders.reserve_held  what this order holds (0 once released), so a release takes back exactly what was held,
--                        at most once
-- depends: 0004_withdrawal_payouts
ALTER TABLE currencies ADD COLUMN held numeric(38, 18) NOT NULL DEFAULT 0 CHECK (held >= 0);
ALTER TABLE orders ADD COLUMN reserve_held numeric(38, 18) NOT NULL DEFAULT 0 CHECK (reserve_held >= 0);

-- Orders open at the time of the migration hold what they will pay out.
UPDATE orders SET reserve_held = amount_out
 WHERE status IN ('new', 'payment_claimed', 'processing', 'paid', 'payout', 'payout_error');
UPDATE currencies c SET held = h.total
  FROM (SELECT currency_out, sum(reserve_held) AS total FROM orders WHERE reserve_held > 0
         GROUP BY currency_out) h
 WHERE h.currency_out = c.code;
