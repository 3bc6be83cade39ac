-- What the rate engine (services/rates/) and the monitors' export (GET /rates.xml) need from the catalogue.
-- - directions.floating: false = the order keeps the rate it was created with for its payment window (the
--   monitors' "fixed rate"); true = the rate at payment decides, and the customer was told so.
-- - directions.rate_frozen / frozen_reason: a guard of the rate engine stopped the direction (no fresh source
--   value, a jump past the allowed percent); a frozen direction takes no orders and leaves every export until an
--   operator looks or fresh values return. rate_updated_at: when rate_in/rate_out last changed.
-- - directions.monitor_params: the monitors' `param` flags of the direction (manual is implied by the exchange
--   type; juridical, verifying, cardverify); directions.city: for cash directions.
-- - currencies.monitor_code: the currency's code in the monitors' conventions (USDTTRC20, SBERRUB, CARDRUB...).
-- depends: 0010_payout_late_success
ALTER TABLE directions ADD COLUMN floating boolean NOT NULL DEFAULT false;
ALTER TABLE directions ADD COLUMN rate_frozen boolean NOT NULL DEFAULT false;
ALTER TABLE directions ADD COLUMN frozen_reason text;
ALTER TABLE directions ADD COLUMN rate_updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE directions ADD COLUMN monitor_params text[] NOT NULL DEFAULT '{}'
    CHECK (monitor_params <@ ARRAY['juridical', 'verifying', 'cardverify']::text[]);
ALTER TABLE directions ADD COLUMN city text CHECK (city ~ '^[A-Z0-9]{2,16}$');
ALTER TABLE currencies ADD COLUMN monitor_code text UNIQUE CHECK (monitor_code ~ '^[A-Z0-9]{2,20}$');
