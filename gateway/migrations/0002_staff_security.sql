-- gateway schema, staff security: browser sessions, TOTP second factor, sign-in throttling and lockout,
-- known sign-in addresses (alert on a new one), pending security alerts, shared rate-limit counters.

ALTER TABLE staff
    ADD COLUMN totp_required boolean NOT NULL DEFAULT false,   -- admins always need it (enforced in code)
    ADD COLUMN created_by    text;

-- Bearer tokens: 'enrol' tokens (password right, TOTP not yet enrolled) may only enrol; idle timeout too.
ALTER TABLE api_tokens
    ADD COLUMN scope        text NOT NULL DEFAULT 'full' CHECK (scope IN ('full', 'enrol')),
    ADD COLUMN last_used_at timestamptz NOT NULL DEFAULT now();

-- Server-side browser sessions: the cookie holds a random id, the table its SHA-256 (a leaked table hands out no
-- session). 'password' = password checked, TOTP code pending; 'enrol' = must enrol TOTP first; 'full' = signed in.
-- Revocable (sign-out, staff disabled, admin kill), idle and absolute timeouts checked on every request.
CREATE TABLE sessions (
    id_hash        text PRIMARY KEY,
    staff_id       integer NOT NULL REFERENCES staff (id),
    stage          text NOT NULL CHECK (stage IN ('password', 'enrol', 'full')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,                  -- absolute timeout
    revoked_at     timestamptz,
    revoked_reason text,
    ip             text,
    user_agent     text
);
CREATE INDEX sessions_staff ON sessions (staff_id) WHERE revoked_at IS NULL;

-- One TOTP secret per staff member. confirmed_at NULL = enrolment started, not finished.
-- last_step: the last accepted 30-second step, so a code is accepted once only (a one-time password is single use).
CREATE TABLE staff_totp (
    staff_id     integer PRIMARY KEY REFERENCES staff (id),
    secret       text NOT NULL,
    confirmed_at timestamptz,
    last_step    bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Failed sign-ins by lower(username), whether the account exists or not (no user enumeration through lockout).
CREATE TABLE login_failures (
    id         bigserial PRIMARY KEY,
    username   text NOT NULL,
    ip         text,
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_user ON login_failures (username, created_at DESC);

CREATE TABLE lockouts (
    username     text PRIMARY KEY,                       -- lower(username)
    locked_until timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Addresses each staff member signed in from; a new one e-mails the admin address.
CREATE TABLE known_addresses (
    staff_id      integer NOT NULL REFERENCES staff (id),
    ip            text NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (staff_id, ip)
);

-- Security alerts to the admin address, written in the transaction that caused them and delivered through the
-- notifier by a sweeper in every gateway process (at least once; the id travels as the idempotency key).
CREATE TABLE security_alerts (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL,
    subject     text NOT NULL,
    body        text NOT NULL,
    extra_to    text,                                     -- e.g. the admin address before a settings change
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    attempts    integer NOT NULL DEFAULT 0,
    next_try_at timestamptz NOT NULL DEFAULT now(),
    last_error  text
);
CREATE INDEX security_alerts_pending ON security_alerts (next_try_at) WHERE sent_at IS NULL;

-- Fixed-window rate-limit counters shared by every gateway worker (flask-limiter storage, gateway/security.py).
CREATE TABLE rate_limits (
    key        text PRIMARY KEY,
    hits       integer NOT NULL,
    expires_at timestamptz NOT NULL
);

-- The signing key of cookies and CSRF tokens when GATEWAY_SECRET_KEY is not set (local runs): one per database so
-- every worker and every restart agree.
CREATE TABLE app_secrets (
    name       text PRIMARY KEY,
    value      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
