-- Idempotency keys belong to a caller and to a request (docs/architecture.md, "Idempotency keys").
-- A key was one global namespace that ignored the body: whoever guessed one got a stranger's order with its token.
--   request_scope  who used the key (the gateway's: account:<id>, bearer:<hash>, session:<hash>; `rpc` for a
--                  caller that names none); keys are unique per scope
--   request_hash   SHA-256 of the canonical request: the same key with another request is refused (409)
-- Withdrawal request ids likewise, per partner.
-- depends: 0007_partner_balances
ALTER TABLE orders ADD COLUMN request_scope text, ADD COLUMN request_hash text;
-- Keys used before scoping stay where nobody's new call can meet them.
UPDATE orders SET request_scope = 'before-scopes' WHERE request_id IS NOT NULL;
ALTER TABLE orders DROP CONSTRAINT orders_request_id_key;
CREATE UNIQUE INDEX orders_request_key ON orders (request_scope, request_id) WHERE request_id IS NOT NULL;
ALTER TABLE orders ADD CONSTRAINT orders_request_scoped CHECK (request_id IS NULL OR request_scope IS NOT NULL);

ALTER TABLE partner_withdrawals ADD COLUMN request_hash text;
ALTER TABLE partner_withdrawals DROP CONSTRAINT partner_withdrawals_request_id_key;
CREATE UNIQUE INDEX partner_withdrawals_request_key ON partner_withdrawals (partner_id, request_id)
    WHERE request_id IS NOT NULL;
