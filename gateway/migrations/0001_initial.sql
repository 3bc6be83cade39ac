-- gateway schema: staff accounts, their bearer tokens, and the audit of sign-ins.

CREATE TABLE staff (
    id            serial PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.@-]{3,64}$'),
    password_hash text NOT NULL,                         -- argon2id
    role          text NOT NULL CHECK (role IN ('admin', 'operator', 'analyst')),
    active        boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Bearer tokens are stored as SHA-256 hashes: a database leak does not hand out sessions; revocable.
CREATE TABLE api_tokens (
    token_hash  text PRIMARY KEY,
    staff_id    integer NOT NULL REFERENCES staff (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    created_ip  text
);
CREATE INDEX api_tokens_staff ON api_tokens (staff_id);

CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    actor      text NOT NULL,
    actor_role text,
    actor_ip   text,
    action     text NOT NULL,
    outcome    text NOT NULL DEFAULT 'ok',
    detail     jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
