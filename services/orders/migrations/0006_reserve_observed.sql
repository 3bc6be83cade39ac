-- A currency's reserve is its payout account's balance, as last observed (docs/architecture.md, "Reserves").
-- reserve_observed_at: when that balance was observed (or an admin stated the reserve); NULL = unknown, after an
-- admin pointed the currency at another account, until that account's balance arrives. Kept apart from
-- updated_at, which any edit moves, so an edit of the name does not make the next observation look old.
-- depends: 0005_reserve_holds
ALTER TABLE currencies ADD COLUMN reserve_observed_at timestamptz DEFAULT now();
UPDATE currencies SET reserve_observed_at = updated_at;
