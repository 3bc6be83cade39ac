-- What orders keeps of the rate engine's verdicts (services/rates/, docs/rates.md):
-- - directions.rate_engine_seq: the sequence number of the last verdict applied; a verdict applies only when its
--   seq is higher (compare-and-set: verdicts may arrive twice or out of order).
-- - orders.floating: the order was created on a floating direction: the direction's rate at payment decides the
--   amount paid out (the customer was told); otherwise the order keeps the rate it was created with.
-- depends: 0011_direction_rate_state
ALTER TABLE directions ADD COLUMN rate_engine_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN floating boolean NOT NULL DEFAULT false;
