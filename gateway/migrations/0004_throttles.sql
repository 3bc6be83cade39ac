-- Sign-in throttles that cannot be raced (docs/security.md, "Throttles and lockout").
-- One row per key: 'pair:<username>|<address>' (failures of one username from one address) and 'user:<username>'
-- (failures of one username from addresses it never signed in from). An attempt counts itself BEFORE the password
-- or code is evaluated, in one INSERT ... ON CONFLICT ... RETURNING, so parallel attempts each see the ones before.
-- The old tables counted after evaluating (a race: one guess per gateway thread) and per username only (an
-- attacker could lock the owner out); they are dropped.
CREATE TABLE signin_throttles (
    key          text PRIMARY KEY,
    username     text NOT NULL,                       -- lower(username), for unlock
    attempts     integer NOT NULL,                    -- attempts in the window, counted before evaluating
    window_end   timestamptz NOT NULL,
    locked_until timestamptz,                         -- set when `attempts` reaches the threshold
    lockouts     integer NOT NULL DEFAULT 0,          -- locks in a row: each one doubles the next
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX signin_throttles_user ON signin_throttles (username);

DROP TABLE login_failures;
DROP TABLE lockouts;
