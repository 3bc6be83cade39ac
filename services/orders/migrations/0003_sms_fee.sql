-- The customer SMS fee, as the notifier announces it (settings_changed): orders keeps the newest version and
-- adds the fee to an order whose customer opts in to SMS, only while customer SMS would really be sent.
CREATE TABLE sms_fee_setting (
    id            smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    fee_percent   numeric(9, 6) NOT NULL DEFAULT 0 CHECK (fee_percent >= 0 AND fee_percent < 100),
    available     boolean NOT NULL DEFAULT false,
    version       integer NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
INSERT INTO sms_fee_setting (id) VALUES (1);
