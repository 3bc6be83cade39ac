"""The tables every service schema shares, defined once: the outbox and inbox of events, and the append-only audit log.

A part's migration adds them with a yoyo step written in Python (docs/migrations.md)::

    from yoyo import step
    from libs.schema_parts import audit_ddl, messaging_ddl

    steps = [step(messaging_ddl()), step(audit_ddl([("order_id", "bigint")]))]

The statements name no schema: yoyo runs a part's migrations with `search_path` set to that part's schema
(libs/migrate.py). The services that existed before this module created the same tables in their own first
migration; those files are applied and stay as they are, and tests/interface/test_schema_parts.py checks that every
live schema still matches what is defined here.
"""
import re

# The transactional outbox (libs/outbox.py): one row per event, written in the transaction of the state change.
# `seq` orders publication; the partial index finds what the relay has still to publish.
OUTBOX_DDL = """
CREATE TABLE outbox (
    id           uuid PRIMARY KEY,
    seq          bigserial UNIQUE,
    source       text        NOT NULL,
    event_type   text        NOT NULL,
    aggregate_id text,
    payload      jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    routed       boolean,
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
"""

# The inbox (libs/inbox.py): a consumer claims (consumer, event_id) in the transaction of its effect.
INBOX_DDL = """
CREATE TABLE processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
"""

# Who did what, from where, with what outcome. A part adds the columns that name what its actions act on
# (`subject_columns`) after `action`.
AUDIT_COLUMNS_BEFORE_SUBJECT = """
    id          bigserial PRIMARY KEY,
    actor       text        NOT NULL,
    actor_role  text,
    actor_ip    text,
    action      text        NOT NULL,"""

AUDIT_COLUMNS_AFTER_SUBJECT = """
    outcome     text        NOT NULL DEFAULT 'ok',
    detail      jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()"""

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def _identifier(name):
    if not _IDENTIFIER.match(name):
        raise ValueError("not a plain lower-case SQL name: %r" % (name,))
    return name


def outbox_ddl():
    return OUTBOX_DDL


def inbox_ddl():
    return INBOX_DDL


def messaging_ddl():
    """The outbox and the inbox of a part that publishes or consumes events."""
    return OUTBOX_DDL + INBOX_DDL


def append_only_ddl(table):
    """A statement trigger that refuses every UPDATE and DELETE of `table` (a log is only ever added to)."""
    table = _identifier(table)
    return """
CREATE FUNCTION {table}_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '{table} is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only();
""".format(table=table)


def audit_ddl(subject_columns=()):
    """The append-only `audit_log`; `subject_columns` is a sequence of (name, SQL type) such as
    [("order_id", "bigint")], the part's own columns naming what an action acted on (nullable: not every action
    has every subject). Indexes on them are the part's own, created after this."""
    subject = "".join("\n    %-11s %s," % (_identifier(name), sql_type) for name, sql_type in subject_columns)
    table = "\nCREATE TABLE audit_log (%s%s%s\n);\n" % (
        AUDIT_COLUMNS_BEFORE_SUBJECT, subject, AUDIT_COLUMNS_AFTER_SUBJECT)
    return table + append_only_ddl("audit_log")
