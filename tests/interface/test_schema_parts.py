"""Every part's outbox, inbox and audit log match their one definition in libs/schema_parts.py (real PostgreSQL).

The parts that existed before libs/schema_parts.py created these tables in their own (applied, frozen) first
migration. After migrating, each part's live tables are compared with the same tables built from libs in a scratch
schema: columns (type, nullability, default), indexes, constraints, triggers with their functions, rules and the
sequences behind serial columns. A difference fails with a diff that names the part, the table and the object.
"""
import re

import psycopg2
import pytest

from libs import migrate
from libs.schema_parts import audit_ddl, messaging_ddl

SHARED_TABLES = ("outbox", "processed_events", "audit_log")

# What each part's shared tables must be: the libs definition, with the part's own audit subject columns and the
# part's own additions. A part that has none of the shared tables is not listed.
EXPECTED = {
    "orders": messaging_ddl()
    + audit_ddl([("order_id", "bigint"), ("from_status", "text"), ("to_status", "text")])
    + "CREATE INDEX audit_log_order ON audit_log (order_id, id);",
    "payments": messaging_ddl() + audit_ddl([("payment_id", "bigint"), ("payout_id", "bigint"),
                                             ("order_id", "bigint")]),
    "notifier": messaging_ddl(),
    # reporting deletes old inbox rows by age (services/reporting/readmodel.py): its own index for that.
    "reporting": messaging_ddl() + "CREATE INDEX processed_events_age ON processed_events (processed_at);",
    # step-up answers are capped per staff member by counting their audit rows (gateway/security/stepup.py)
    "gateway": audit_ddl()
    + "CREATE INDEX audit_log_step_up ON audit_log (actor, created_at) WHERE action = 'step_up';",
    "rates": messaging_ddl() + audit_ddl([("direction_id", "bigint"), ("source", "text")]),
    # the first part born on libs/schema_parts.py: operators' actions on the messaging (libs/dlq.py)
    "ops": audit_ddl([("queue", "text"), ("event_id", "text")]),
}

SCRATCH_PREFIX = "schema_parts_"


@pytest.fixture
def conn(migrated_database):
    connection = psycopg2.connect(migrated_database)
    connection.autocommit = True
    yield connection
    connection.close()


def _normalised(text, schema):
    """Definitions without the schema's name and with white space folded, so two schemas compare."""
    text = re.sub(r'\b"?%s"?\.' % re.escape(schema), "", text)
    return " ".join(text.split())


def _rows(cur, sql, params):
    cur.execute(sql, params)
    return cur.fetchall()


def describe(cur, schema, table):
    """{(kind, name): definition} of one table: every property the comparison looks at."""
    cur.execute("SET search_path TO %s" % schema)
    found = {}
    oid = _rows(cur, "SELECT c.oid, c.relkind, c.relpersistence FROM pg_class c "
                     "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
                (schema, table))
    if not oid:
        return found
    oid, relkind, persistence = oid[0]
    found[("table", table)] = "relkind=%s persistence=%s" % (relkind, persistence)
    for name, sql_type, not_null, default, identity, generated in _rows(
            cur, "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
                 "pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated FROM pg_attribute a "
                 "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                 "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped", (oid,)):
        found[("column", name)] = "%s %s default %s%s%s" % (
            sql_type, "NOT NULL" if not_null else "NULL", default,
            " identity %s" % identity if identity else "", " generated %s" % generated if generated else "")
    for name, definition in _rows(
            cur, "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
                 "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s", (oid,)):
        found[("index", name)] = definition
    for name, kind, definition, deferrable in _rows(
            cur, "SELECT conname, contype, pg_get_constraintdef(oid), condeferrable FROM pg_constraint "
                 "WHERE conrelid = %s", (oid,)):
        found[("constraint", name)] = "%s %s%s" % (kind, definition, " DEFERRABLE" if deferrable else "")
    for name, definition, enabled, function in _rows(
            cur, "SELECT t.tgname, pg_get_triggerdef(t.oid), t.tgenabled, pg_get_functiondef(t.tgfoid) "
                 "FROM pg_trigger t WHERE t.tgrelid = %s AND NOT t.tgisinternal", (oid,)):
        found[("trigger", name)] = "%s enabled=%s" % (definition, enabled)
        found[("trigger function of", name)] = function
    for name, definition in _rows(cur, "SELECT rulename, definition FROM pg_rules "
                                       "WHERE schemaname = %s AND tablename = %s", (schema, table)):
        found[("rule", name)] = definition
    for name, data_type, start, increment, minimum, maximum, cache, cycle in _rows(
            cur, "SELECT s.relname, q.seqtypid::regtype::text, q.seqstart, q.seqincrement, q.seqmin, q.seqmax, "
                 "q.seqcache, q.seqcycle FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
                 "JOIN pg_sequence q ON q.seqrelid = s.oid "
                 "WHERE d.refobjid = %s AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')", (oid,)):
        found[("sequence", name)] = "%s start %s increment %s min %s max %s cache %s%s" % (
            data_type, start, increment, minimum, maximum, cache, " cycle" if cycle else "")
    return {key: _normalised(value, schema) for key, value in found.items()}


def shared_tables_of(cur, schema):
    cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name = ANY(%s)",
                (schema, list(SHARED_TABLES)))
    return sorted(row[0] for row in cur.fetchall())


def build_scratch(cur, name, ddl):
    cur.execute("DROP SCHEMA IF EXISTS %s CASCADE" % name)
    cur.execute("CREATE SCHEMA %s" % name)
    cur.execute("SET search_path TO %s" % name)
    cur.execute(ddl)


def differences(cur, live_schema, canonical_schema):
    """Lines that say how the live schema's shared tables differ from the canonical ones; none when they match."""
    lines = []
    tables = sorted(set(shared_tables_of(cur, live_schema)) | set(shared_tables_of(cur, canonical_schema)))
    for table in tables:
        live = describe(cur, live_schema, table)
        canonical = describe(cur, canonical_schema, table)
        if not live or not canonical:
            lines.append("%s.%s: table %s" % (live_schema, table, "missing" if canonical else "not expected here"))
            continue
        for key in sorted(set(live) | set(canonical)):
            if live.get(key) != canonical.get(key):
                lines.append("%s.%s %s %s\n    canonical: %s\n    live:      %s" % (
                    live_schema, table, key[0], key[1], canonical.get(key, "(none)"), live.get(key, "(none)")))
    return lines


def test_every_part_with_shared_tables_is_checked(conn):
    with conn.cursor() as cur:
        unchecked = {schema: shared_tables_of(cur, schema) for schema in migrate.PARTS
                     if schema not in EXPECTED and shared_tables_of(cur, schema)}
    assert not unchecked, "parts with shared tables missing from EXPECTED in %s: %s" % (__file__, unchecked)


@pytest.mark.parametrize("schema", sorted(EXPECTED))
def test_live_shared_tables_match_libs_definition(conn, schema):
    scratch = SCRATCH_PREFIX + schema
    with conn.cursor() as cur:
        try:
            build_scratch(cur, scratch, EXPECTED[schema])
            found = differences(cur, schema, scratch)
        finally:
            cur.execute("DROP SCHEMA IF EXISTS %s CASCADE" % scratch)
    assert not found, "%s differs from libs/schema_parts.py:\n%s" % (schema, "\n".join(found))


NEW_PART_MIGRATION = '''
from yoyo import step

from libs.schema_parts import audit_ddl, messaging_ddl

steps = [step(messaging_ddl()), step(audit_ddl([("thing_id", "bigint")]))]
'''


def test_new_part_gets_shared_tables_from_a_python_migration(conn, migrated_database, tmp_path):
    """A new part's first migration is a yoyo step built from libs: migrating it gives the canonical tables, and the
    audit log refuses changes."""
    (tmp_path / "0001_initial.py").write_text(NEW_PART_MIGRATION)
    new_part, scratch = SCRATCH_PREFIX + "new_part", SCRATCH_PREFIX + "new_part_canonical"
    with conn.cursor() as cur:
        cur.execute("DROP SCHEMA IF EXISTS %s CASCADE" % new_part)
        try:
            assert migrate.migrate_part(migrated_database, new_part, str(tmp_path)) == ["0001_initial"]
            assert migrate.migrate_part(migrated_database, new_part, str(tmp_path)) == []
            build_scratch(cur, scratch, messaging_ddl() + audit_ddl([("thing_id", "bigint")]))
            assert shared_tables_of(cur, new_part) == sorted(SHARED_TABLES)
            assert differences(cur, new_part, scratch) == []

            cur.execute("SET search_path TO %s" % new_part)
            cur.execute("INSERT INTO audit_log (actor, action, thing_id) VALUES ('tester', 'made', 1)")
            with pytest.raises(psycopg2.errors.RaiseException, match="audit_log is append-only"):
                cur.execute("UPDATE audit_log SET outcome = 'changed'")
            with pytest.raises(psycopg2.errors.RaiseException, match="audit_log is append-only"):
                cur.execute("DELETE FROM audit_log")
        finally:
            cur.execute("DROP SCHEMA IF EXISTS %s CASCADE" % new_part)
            cur.execute("DROP SCHEMA IF EXISTS %s CASCADE" % scratch)


def test_a_difference_is_reported(conn):
    """The comparison sees what it claims to: a changed default, a missing index and a missing trigger."""
    live, canonical = SCRATCH_PREFIX + "altered", SCRATCH_PREFIX + "altered_canonical"
    with conn.cursor() as cur:
        try:
            build_scratch(cur, canonical, messaging_ddl() + audit_ddl())
            build_scratch(cur, live, messaging_ddl() + audit_ddl())
            cur.execute("ALTER TABLE outbox ALTER COLUMN attempts SET DEFAULT 1; DROP INDEX outbox_unpublished; "
                        "DROP TRIGGER audit_log_no_change ON audit_log")
            found = differences(cur, live, canonical)
        finally:
            cur.execute("DROP SCHEMA IF EXISTS %s CASCADE" % live)
            cur.execute("DROP SCHEMA IF EXISTS %s CASCADE" % canonical)
    assert [line.split("\n")[0] for line in found] == [
        "%s.audit_log trigger audit_log_no_change" % live,
        "%s.audit_log trigger function of audit_log_no_change" % live,
        "%s.outbox column attempts" % live,
        "%s.outbox index outbox_unpublished" % live,
    ]
