-- The partner ledger's running balance, kept per partner and currency (docs/partners.md, "The ledger").
--
-- The first trigger took the previous balance from the ledger row with the highest id. But a row's id is drawn
-- when the INSERT starts, before the trigger waits for the partner's lock: a writer that drew its id first and got
-- the lock second wrote a row the next writer never saw as the last one, and that writer's balance left out its
-- amount. Now the balance lives in partner_balances, read and written only under the partner's lock, and the store
-- takes that lock before it inserts (so ids follow the lock order too).
-- depends: 0006_reserve_observed

CREATE TABLE partner_balances (
    partner_id bigint NOT NULL REFERENCES partners (id),
    currency   text NOT NULL REFERENCES currencies (code),
    balance    numeric(38, 18) NOT NULL CHECK (balance >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, currency)
);
-- The ledger's sum is the truth (a balance_after written by the old trigger may have missed an amount).
INSERT INTO partner_balances (partner_id, currency, balance)
SELECT partner_id, currency, sum(amount) FROM partner_ledger GROUP BY partner_id, currency;

-- BEFORE INSERT: the row's balance_after from the balance under the partner's lock; refused below 0.
CREATE OR REPLACE FUNCTION partner_ledger_balance() RETURNS trigger AS $$
DECLARE
    previous numeric(38, 18);
BEGIN
    -- One writer per partner at a time; the next statement then sees every committed balance before ours.
    PERFORM 1 FROM partners WHERE id = NEW.partner_id FOR UPDATE;
    SELECT balance INTO previous FROM partner_balances
     WHERE partner_id = NEW.partner_id AND currency = NEW.currency;
    NEW.balance_after := COALESCE(previous, 0) + NEW.amount;
    NEW.created_at := now();
    IF NEW.balance_after < 0 THEN
        RAISE EXCEPTION 'partner % balance in % would go negative (% + %)', NEW.partner_id, NEW.currency,
            COALESCE(previous, 0), NEW.amount USING ERRCODE = 'check_violation',
            CONSTRAINT = 'partner_ledger_balance_after_check';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql SET search_path FROM CURRENT;

-- AFTER INSERT: the balance moves only for a row really inserted (an INSERT … ON CONFLICT DO NOTHING that meets
-- its conflict, a repeated credit, runs the BEFORE trigger but not this one). Still under the partner's lock.
CREATE FUNCTION partner_ledger_balance_store() RETURNS trigger AS $$
BEGIN
    INSERT INTO partner_balances (partner_id, currency, balance) VALUES (NEW.partner_id, NEW.currency,
                                                                          NEW.balance_after)
    ON CONFLICT (partner_id, currency) DO UPDATE SET balance = EXCLUDED.balance, updated_at = now();
    RETURN NULL;
END;
$$ LANGUAGE plpgsql SET search_path FROM CURRENT;

CREATE TRIGGER partner_ledger_balance_store AFTER INSERT ON partner_ledger
    FOR EACH ROW EXECUTE FUNCTION partner_ledger_balance_store();
