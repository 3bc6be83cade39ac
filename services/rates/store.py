"""Every SQL statement of the rates service (schema `rates`, docs/rates.md)."""
import json

from libs import outbox
from libs.audit import write_audit
from libs.contracts import events
from libs.db import execute_batch

SOURCE = events.RATES
ENGINE_LOCK = 7710013   # pg_try_advisory_xact_lock key: one recompute at a time across instances


class RatesStore:
    def __init__(self, db):
        self.db = db

    # -- sources ---------------------------------------------------------------------------------------------------
    def sync_sources(self, configured):
        """The configured sources as rows (settings updated, state kept); rows of sources no longer configured
        stay with their values, which then age out."""
        with self.db.transaction() as cur:
            for s in configured:
                cur.execute(
                    "INSERT INTO sources (name, kind, url, poll_seconds, timeout_seconds, max_age_seconds) "
                    "VALUES (%(name)s, %(kind)s, %(url)s, %(poll_seconds)s, %(timeout_seconds)s, %(max_age_seconds)s) "
                    "ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, url = EXCLUDED.url, "
                    "poll_seconds = EXCLUDED.poll_seconds, timeout_seconds = EXCLUDED.timeout_seconds, "
                    "max_age_seconds = EXCLUDED.max_age_seconds, updated_at = now()", s)

    def sources(self):
        return self.db.fetchall("SELECT *, now() AS now FROM sources ORDER BY name")

    def due_sources(self, names):
        """The named (fetched) sources whose polling interval has passed, by the database's clock."""
        return self.db.fetchall(
            "SELECT * FROM sources WHERE name = ANY(%s) AND kind <> 'manual' AND (last_polled_at IS NULL OR "
            "last_polled_at + poll_seconds * interval '1 second' <= now()) ORDER BY name", (list(names),))

    def record_fetch(self, name, values, fetched_at):
        """A source's good answer to a request made at `fetched_at`: its values (a value keeps its source time; an
        answer repeating an older time does not make it younger, and the answer of an earlier request that
        arrives late does not replace a later one's) and the source's state."""
        with self.db.transaction() as cur:
            if values:
                execute_batch(cur, [(
                    "INSERT INTO source_values (source, symbol, value, source_time, fetched_at) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (source, symbol) DO UPDATE SET value = EXCLUDED.value, "
                    "source_time = EXCLUDED.source_time, fetched_at = EXCLUDED.fetched_at "
                    "WHERE EXCLUDED.fetched_at >= source_values.fetched_at AND (source_values.source_time IS NULL "
                    "OR EXCLUDED.source_time IS NULL OR EXCLUDED.source_time >= source_values.source_time)",
                    (name, symbol, value, source_time, fetched_at)) for symbol, value, source_time in values])
            cur.execute("UPDATE sources SET last_polled_at = greatest(last_polled_at, %s), "
                        "last_ok_at = greatest(last_ok_at, %s), errors_in_row = 0 WHERE name = %s",
                        (fetched_at, fetched_at, name))

    def record_error(self, name, error, at):
        with self.db.transaction() as cur:
            cur.execute("UPDATE sources SET last_polled_at = greatest(last_polled_at, %s), last_error = %s, "
                        "last_error_at = %s, errors_in_row = errors_in_row + 1 WHERE name = %s",
                        (at, error[:500], at, name))

    def values(self):
        return self.db.fetchall("SELECT v.*, s.max_age_seconds, now() AS now FROM source_values v "
                                "JOIN sources s ON s.name = v.source ORDER BY v.source, v.symbol")

    def set_manual_value(self, source, symbol, value, actor):
        with self.db.transaction() as cur:
            cur.execute("SELECT value FROM source_values WHERE source = %s AND symbol = %s FOR UPDATE",
                        (source, symbol))
            before = cur.fetchone()
            cur.execute(
                "INSERT INTO source_values (source, symbol, value, source_time, fetched_at, set_by) "
                "VALUES (%s, %s, %s, now(), now(), %s) ON CONFLICT (source, symbol) DO UPDATE SET "
                "value = EXCLUDED.value, source_time = now(), fetched_at = now(), set_by = EXCLUDED.set_by "
                "RETURNING *", (source, symbol, value, actor.get("name")))
            row = cur.fetchone()
            write_audit(cur, actor, "manual_value_set", "ok", {
                "source": source, "symbol": symbol, "value": str(value),
                "before": str(before["value"]) if before else None}, alert_source=SOURCE, source=source)
        return row

    # -- formulas --------------------------------------------------------------------------------------------------
    def formulas(self):
        return self.db.fetchall("SELECT * FROM formulas ORDER BY direction_id")

    # What a recompute needs of each formula, read with a plain cursor: building a dict per row in Python
    # (RealDictCursor) cost more than the recompute itself at 1,000 formulas.
    ENGINE_COLUMNS = ("direction_id", "version", "expression", "quote", "precision_in", "precision_out",
                      "max_jump_percent", "max_spread_percent", "accepted_value", "value", "frozen", "frozen_code",
                      "published_frozen", "published_rate_in", "published_rate_out", "currency_in", "currency_out")

    def engine_formulas(self):
        with self.db.transaction() as dict_cur:
            with dict_cur.connection.cursor() as cur:
                cur.execute("SELECT %s FROM formulas" % ", ".join(self.ENGINE_COLUMNS))
                rows = cur.fetchall()
        columns = self.ENGINE_COLUMNS
        return [dict(zip(columns, row)) for row in rows]

    def formula(self, direction_id):
        return self.db.fetchone("SELECT * FROM formulas WHERE direction_id = %s", (direction_id,))

    def save_formula(self, direction, values, actor, expected_version=None):
        """Insert or replace a formula (a new version), with its history row and audit row. None when
        `expected_version` is given and is not the version now (someone saved meanwhile)."""
        with self.db.transaction() as cur:
            cur.execute("SELECT * FROM formulas WHERE direction_id = %s FOR UPDATE", (direction["id"],))
            before = cur.fetchone()
            if expected_version is not None and (before["version"] if before else 0) != expected_version:
                return None
            params = dict(values, direction_id=direction["id"], currency_in=direction["currency_in"],
                          currency_out=direction["currency_out"], precision_in=direction["precision_in"],
                          precision_out=direction["precision_out"], actor=actor.get("name"))
            cur.execute(
                "INSERT INTO formulas (direction_id, currency_in, currency_out, precision_in, precision_out, "
                "expression, quote, max_jump_percent, max_spread_percent, updated_by) VALUES (%(direction_id)s, "
                "%(currency_in)s, %(currency_out)s, %(precision_in)s, %(precision_out)s, %(expression)s, %(quote)s, "
                "%(max_jump_percent)s, %(max_spread_percent)s, %(actor)s) ON CONFLICT (direction_id) DO UPDATE SET "
                "currency_in = EXCLUDED.currency_in, currency_out = EXCLUDED.currency_out, "
                "precision_in = EXCLUDED.precision_in, precision_out = EXCLUDED.precision_out, "
                "expression = EXCLUDED.expression, quote = EXCLUDED.quote, "
                "max_jump_percent = EXCLUDED.max_jump_percent, max_spread_percent = EXCLUDED.max_spread_percent, "
                "version = formulas.version + 1, updated_by = EXCLUDED.updated_by, updated_at = now() RETURNING *",
                params)
            row = cur.fetchone()
            after = _formula_record(row)
            execute_batch(cur, [
                ("INSERT INTO formula_history (direction_id, version, actor, actor_role, actor_ip, before, after) "
                 "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                 (row["direction_id"], row["version"], actor.get("name"), actor.get("role"), actor.get("ip"),
                  json.dumps(_formula_record(before)) if before else None, json.dumps(after))),
            ])
            write_audit(cur, actor, "formula_save", "ok", {
                "direction_id": row["direction_id"], "version": row["version"], "after": after,
                "before": _formula_record(before) if before else None},
                alert_source=SOURCE, direction_id=row["direction_id"], source=None)
        return row

    def delete_formula(self, direction_id, actor):
        """Remove a formula; the direction is announced unfrozen with its last rate (an operator sets it by
        hand from now on). False if there was none."""
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM formulas WHERE direction_id = %s RETURNING *", (direction_id,))
            before = cur.fetchone()
            if before is None:
                return False
            seq = before["seq"] + 1
            execute_batch(cur, [
                ("INSERT INTO formula_history (direction_id, version, actor, actor_role, actor_ip, before, after) "
                 "VALUES (%s, %s, %s, %s, %s, %s, NULL)",
                 (direction_id, before["version"] + 1, actor.get("name"), actor.get("role"), actor.get("ip"),
                  json.dumps(_formula_record(before)))),
                ("INSERT INTO rate_history (direction_id, seq, value, rate_in, rate_out, frozen, reason) "
                 "VALUES (%s, %s, NULL, NULL, NULL, false, 'formula removed')", (direction_id, seq)),
            ])
            outbox.write_event(cur, SOURCE, events.RATES_COMPUTED, {"items": [{
                "direction_id": direction_id, "seq": seq, "rate_in": None, "rate_out": None, "frozen": False,
                "reason": None, "code": "removed"}]}, aggregate_id=direction_id)
            write_audit(cur, actor, "formula_delete", "ok", {"direction_id": direction_id,
                                                             "before": _formula_record(before)},
                        alert_source=SOURCE, direction_id=direction_id, source=None)
        return True

    def accept(self, direction_id, actor):
        """An operator accepts the value the engine computed (a jump or spread it froze on): it becomes the
        accepted value, so the next recompute thaws the direction if nothing else is wrong."""
        with self.db.transaction() as cur:
            cur.execute("SELECT * FROM formulas WHERE direction_id = %s FOR UPDATE", (direction_id,))
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute("UPDATE formulas SET accepted_value = coalesce(value, accepted_value) "
                        "WHERE direction_id = %s RETURNING *", (direction_id,))
            after = cur.fetchone()
            write_audit(cur, actor, "rate_accept", "ok", {
                "direction_id": direction_id, "value": str(row["value"]) if row["value"] is not None else None,
                "accepted_before": str(row["accepted_value"]) if row["accepted_value"] is not None else None,
                "frozen_reason": row["frozen_reason"]}, alert_source=SOURCE, direction_id=direction_id, source=None)
        return after

    def formula_history(self, direction_id, limit=50):
        return self.db.fetchall("SELECT * FROM formula_history WHERE direction_id = %s ORDER BY id DESC LIMIT %s",
                                (direction_id, limit))

    def rate_history(self, direction_id, limit=200):
        rows = self.db.fetchall("SELECT * FROM rate_history WHERE direction_id = %s ORDER BY id DESC LIMIT %s",
                                (direction_id, limit))
        return list(reversed(rows))

    # -- the engine ------------------------------------------------------------------------------------------------
    def publish(self, updates, frozen_now):
        """One recompute's changes in one transaction: each formula's verdict, its history row, one
        rates_computed event with every changed direction and one directions_frozen for those frozen just now.
        `updates`: [{direction_id, value, rate_in, rate_out, frozen, code, reason, accepted_value, publish}];
        rows with publish=False only record the verdict. False if another instance is recomputing."""
        with self.db.transaction() as cur:
            cur.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok", (ENGINE_LOCK,))
            if not cur.fetchone()["ok"]:
                return False
            published = [u for u in updates if u["publish"]]
            recorded = [u for u in updates if not u["publish"]]
            items = []
            if published:
                # one statement for all: the verdicts, seq + 1 and the history rows (a formula saved or removed
                # meanwhile does not match its version: the next recompute sees it)
                cur.execute(
                    "WITH u AS (SELECT * FROM unnest(%s::bigint[], %s::int[], %s::numeric[], %s::numeric[], "
                    "%s::numeric[], %s::boolean[], %s::text[], %s::text[], %s::numeric[]) AS u(direction_id, "
                    "version, value, rate_in, rate_out, frozen, code, reason, accepted_value)), "
                    "changed AS (UPDATE formulas f SET value = u.value, rate_in = u.rate_in, rate_out = u.rate_out, "
                    "frozen = u.frozen, frozen_code = u.code, frozen_reason = u.reason, "
                    "frozen_since = CASE WHEN u.frozen THEN coalesce(f.frozen_since, now()) END, "
                    "accepted_value = u.accepted_value, computed_at = now(), seq = f.seq + 1, "
                    "published_rate_in = u.rate_in, published_rate_out = u.rate_out, published_frozen = u.frozen, "
                    "published_reason = u.reason FROM u WHERE f.direction_id = u.direction_id "
                    "AND f.version = u.version RETURNING f.direction_id, f.seq, f.value, f.rate_in, f.rate_out, "
                    "f.frozen, f.frozen_code, f.frozen_reason), "
                    "history AS (INSERT INTO rate_history (direction_id, seq, value, rate_in, rate_out, frozen, "
                    "reason) SELECT direction_id, seq, value, rate_in, rate_out, frozen, frozen_reason FROM changed) "
                    "SELECT direction_id, seq, rate_in, rate_out, frozen, frozen_code AS code, "
                    "frozen_reason AS reason FROM changed ORDER BY direction_id",
                    _columns(published, ("direction_id", "version", "value", "rate_in", "rate_out", "frozen", "code",
                                         "reason", "accepted_value")))
                items = [dict(r) for r in cur.fetchall()]
            if recorded:
                cur.execute(
                    "UPDATE formulas f SET value = u.value, accepted_value = u.accepted_value, computed_at = now() "
                    "FROM unnest(%s::bigint[], %s::int[], %s::numeric[], %s::numeric[]) AS u(direction_id, "
                    "version, value, accepted_value) WHERE f.direction_id = u.direction_id AND f.version = u.version",
                    _columns(recorded, ("direction_id", "version", "value", "accepted_value")))
            if items:
                outbox.write_event(cur, SOURCE, events.RATES_COMPUTED, {"items": _wire(items)})
            if frozen_now:
                outbox.write_event(cur, SOURCE, events.DIRECTIONS_FROZEN, {"items": frozen_now})
        return True

    def list_audit(self, limit=100):
        return self.db.fetchall("SELECT * FROM audit_log ORDER BY id DESC LIMIT %s", (limit,))


def _columns(rows, names):
    """One list per column, for unnest(): a batch in one statement."""
    return [[row[name] for row in rows] for name in names]


def _wire(items):
    from libs.money import to_str
    return [dict(i, rate_in=to_str(i["rate_in"]), rate_out=to_str(i["rate_out"])) for i in items]


def _formula_record(row):
    if row is None:
        return None
    return {"expression": row["expression"], "quote": row["quote"],
            "max_jump_percent": str(row["max_jump_percent"]), "max_spread_percent": str(row["max_spread_percent"])}
