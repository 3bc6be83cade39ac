"""gateway schema: staff accounts, their bearer tokens, and the audit of sign-ins.

The outbox, inbox and audit-log tables come from their one definition in libs/schema_parts.py (docs/migrations.md);
this migration was a plain SQL file with its own copy of them, applied with the same id (yoyo keys a migration by its
file name without extension), so a database that ran it does not run it again.
"""
from yoyo import step

from libs.schema_parts import audit_ddl, messaging_ddl  # noqa: F401  (a part may use only one of them)

steps = [step(
    """-- gateway schema: staff accounts, their bearer tokens, and the audit of sign-ins.

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

"""
    + audit_ddl([])
)]
