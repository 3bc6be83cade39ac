"""The monitors' rates file kept rendered in `monitor_export` (docs/monitors.md, "Caching"), the maintenance switch,
and the `directions_changed` event that tells the export (and anyone caching the catalogue) to look again."""
from libs.audit import write_audit
from libs.contracts import events
from libs.outbox import write_event
from services.orders.domain import monitor_export as rules

# Every direction with what the export needs of its currencies; the filter is domain/monitor_export.py `listed`.
EXPORT_SQL = """
SELECT d.id, d.exchange_type, d.rate_in, d.rate_out, d.fee, d.min_amount, d.max_amount, d.active, d.rate_frozen,
       d.floating, d.monitor_params, d.city, ci.active AS active_in, co.active AS active_out,
       ci.monitor_code AS monitor_code_in, co.monitor_code AS monitor_code_out, co.precision AS precision_out,
       co.reserve - co.held AS available
  FROM directions d
  JOIN currencies ci ON ci.code = d.currency_in
  JOIN currencies co ON co.code = d.currency_out
 WHERE d.active AND ci.active AND co.active AND NOT d.rate_frozen
   AND ci.monitor_code IS NOT NULL AND co.monitor_code IS NOT NULL
 ORDER BY d.id
"""

STATE_COLUMNS = "version, rendered_at, items, maintenance, maintenance_changed_at, maintenance_changed_by"


def publish_directions_changed(cur, direction_ids, reason):
    """The `directions_changed` event in the caller's transaction (libs/contracts/events.py)."""
    write_event(cur, events.ORDERS, events.DIRECTIONS_CHANGED,
                {"direction_ids": sorted(set(direction_ids)), "reason": reason})


def directions_of_currency(cur, code):
    cur.execute("SELECT id FROM directions WHERE currency_in = %s OR currency_out = %s", (code, code))
    return [r["id"] for r in cur.fetchall()]


def refresh(db):
    """Render the file from the catalogue as it is now; a new version only when the document changed.

    The row is locked first, so renders run one at a time and each reads what every earlier one read or newer
    (READ COMMITTED: the catalogue query starts after the lock is granted): an older picture never overwrites a
    newer one. Returns the state (version, rendered_at, items, maintenance...)."""
    with db.transaction() as cur:
        cur.execute("SELECT maintenance, xml FROM monitor_export WHERE id = 1 FOR UPDATE")
        current = cur.fetchone()
        cur.execute(EXPORT_SQL)
        xml, json_text, count = rules.render(cur.fetchall(), current["maintenance"])
        text = xml.decode("utf-8")
        if text != current["xml"]:
            cur.execute("UPDATE monitor_export SET xml = %s, json = %s, items = %s, version = version + 1, "
                        "rendered_at = greatest(date_trunc('second', now()), rendered_at + interval '1 second') "
                        "WHERE id = 1", (text, json_text, count))
        cur.execute("SELECT " + STATE_COLUMNS + " FROM monitor_export WHERE id = 1")
        return _state(cur.fetchone())


def document(db, known_version=None):
    """What the gateway serves: {version, rendered_at, unchanged: true} when it holds `known_version` already,
    else the whole document {version, rendered_at, xml, json, items, maintenance}."""
    row = db.fetchone("SELECT version, rendered_at FROM monitor_export WHERE id = 1")
    if known_version is not None and row["version"] == known_version:
        return {"version": row["version"], "rendered_at": row["rendered_at"].isoformat(), "unchanged": True}
    row = db.fetchone("SELECT version, rendered_at, items, maintenance, xml, json FROM monitor_export WHERE id = 1")
    return {"version": row["version"], "rendered_at": row["rendered_at"].isoformat(), "unchanged": False,
            "items": row["items"], "maintenance": row["maintenance"], "xml": row["xml"], "json": row["json"]}


def state(db):
    return _state(db.fetchone("SELECT " + STATE_COLUMNS + " FROM monitor_export WHERE id = 1"))


def set_maintenance(db, on, actor):
    """Switch maintenance on (the file becomes `<rates/>`) or off; audited, and the export told at once."""
    with db.transaction() as cur:
        cur.execute("SELECT maintenance FROM monitor_export WHERE id = 1 FOR UPDATE")
        before = cur.fetchone()["maintenance"]
        cur.execute("UPDATE monitor_export SET maintenance = %s, maintenance_changed_at = now(), "
                    "maintenance_changed_by = %s WHERE id = 1", (on, actor.get("name")))
        write_audit(cur, actor, "monitor_maintenance", "ok", {"maintenance": on, "before": before},
                    order_id=None, from_status=None, to_status=None)
        publish_directions_changed(cur, [], "maintenance")
    return state(db)


def _state(row):
    return {"version": row["version"], "rendered_at": row["rendered_at"].isoformat(), "items": row["items"],
            "maintenance": row["maintenance"],
            "maintenance_changed_at": (row["maintenance_changed_at"].isoformat()
                                       if row["maintenance_changed_at"] else None),
            "maintenance_changed_by": row["maintenance_changed_by"]}
