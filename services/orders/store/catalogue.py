"""Directions and currencies: what customers choose from and admins change (docs/pages.md). Every change is
audited in orders.audit_log with its before and after. Reserves, what open orders hold of them, and why an edit of
the payout account resets one: docs/architecture.md, "Reserves"."""
from libs import errors, inbox
from libs.audit import audit_statement, write_audit
from libs.db import execute_batch
from libs.contracts import events
from services.orders.domain import RuleError, catalogue as rules
from services.orders.schemas import currency_to_wire, direction_to_wire, plain, plain_values
from services.orders.store.monitor_export import directions_of_currency, publish_directions_changed

# A direction with what its currencies add (precision, names, the reserve of the one paid out and what open orders
# do not hold of it, where customers pay) and whether it can take orders now.
DIRECTION_SQL = """
SELECT d.*, ci.precision AS precision_in, co.precision AS precision_out, ci.name AS name_in, co.name AS name_out,
       co.reserve AS reserve, co.reserve - co.held AS available, ci.payment_system AS pay_system, ci.account AS pay_account,
       ci.active AND co.active AND d.active AS usable
  FROM directions d
  JOIN currencies ci ON ci.code = d.currency_in
  JOIN currencies co ON co.code = d.currency_out
"""


def _audit(cur, actor, action, detail):
    # every catalogue change moves money (where customers pay, rates, fees): each raises an alert to the admins
    write_audit(cur, actor, action, "ok", detail, alert_source=events.ORDERS, order_id=None, from_status=None,
                to_status=None)


RATE_ENGINE = {"kind": "system", "name": "rate-engine"}


def apply_engine_rates(db, event_id, consumer, items):
    """The rate engine's verdicts (libs/contracts/rates.py), with the inbox claim in one transaction. Each applies
    only if its seq is above the direction's rate_engine_seq (compare-and-set: a repeated or older verdict changes
    nothing). A rate sets rate_in/rate_out; a frozen verdict keeps the last rate and stops the direction. One
    statement for the whole batch (a recompute may carry a thousand directions); freezes and thaws are audited;
    every changed direction goes out in one `directions_changed`."""
    with db.transaction() as cur:
        if not inbox.claim(cur, consumer, event_id):
            return []
        if not items:
            return []
        cur.execute(
            "WITH v AS (SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::numeric[], %s::numeric[], "
            "%s::boolean[], %s::text[], %s::text[]) AS v(id, seq, rate_in, rate_out, frozen, reason, code)), "
            "old AS (SELECT d.id, d.rate_in, d.rate_out, d.rate_frozen, d.frozen_reason FROM directions d "
            "JOIN v ON v.id = d.id AND d.rate_engine_seq < v.seq ORDER BY d.id FOR UPDATE OF d) "
            "UPDATE directions d SET rate_engine_seq = v.seq, rate_frozen = v.frozen, "
            "frozen_reason = CASE WHEN v.frozen THEN v.reason END, "
            "rate_in = CASE WHEN NOT v.frozen AND v.rate_in IS NOT NULL THEN v.rate_in ELSE d.rate_in END, "
            "rate_out = CASE WHEN NOT v.frozen AND v.rate_out IS NOT NULL THEN v.rate_out ELSE d.rate_out END, "
            "rate_updated_at = CASE WHEN NOT v.frozen AND v.rate_in IS NOT NULL "
            "AND (d.rate_in <> v.rate_in OR d.rate_out <> v.rate_out) THEN now() ELSE d.rate_updated_at END, "
            "updated_at = now() FROM v JOIN old ON old.id = v.id WHERE d.id = v.id AND d.rate_engine_seq < v.seq "
            "RETURNING d.id, v.seq, v.code, d.rate_frozen, d.frozen_reason, d.rate_in, d.rate_out, "
            "old.rate_frozen AS was_frozen, old.frozen_reason AS was_reason, old.rate_in AS was_rate_in, "
            "old.rate_out AS was_rate_out",
            [[i["direction_id"] for i in items], [i["seq"] for i in items], [i["rate_in"] for i in items],
             [i["rate_out"] for i in items], [bool(i["frozen"]) for i in items], [i["reason"] for i in items],
             [i.get("code") for i in items]])
        changed, audits = [], []
        for row in cur.fetchall():
            if row["rate_frozen"] != row["was_frozen"]:
                audits.append(audit_statement(
                    RATE_ENGINE, "direction_freeze" if row["rate_frozen"] else "direction_thaw", "ok",
                    {"direction_id": row["id"], "reason": row["frozen_reason"], "code": row["code"],
                     "seq": row["seq"]}, order_id=None, from_status=None, to_status=None))
            if (row["rate_frozen"] != row["was_frozen"] or row["rate_in"] != row["was_rate_in"]
                    or row["rate_out"] != row["was_rate_out"]
                    or (row["rate_frozen"] and row["frozen_reason"] != row["was_reason"])):
                changed.append(row["id"])
        if audits:
            execute_batch(cur, audits)
        if changed:
            publish_directions_changed(cur, changed, "rate_engine")
    return changed


def list_directions(db, active_only=True):
    sql = DIRECTION_SQL + (" WHERE ci.active AND co.active AND d.active" if active_only else "") + " ORDER BY d.id"
    return [direction_to_wire(r) for r in db.fetchall(sql)]


def get_direction(db, direction_id):
    row = db.fetchone(DIRECTION_SQL + " WHERE d.id = %s", (direction_id,))
    if row is None:
        raise errors.NotFound("direction not found")
    return direction_to_wire(row)


def direction_for_order(cur, direction_id):
    """The direction row (Decimals) an order is created on, in the order's transaction; None if unknown."""
    cur.execute(DIRECTION_SQL + " WHERE d.id = %s", (direction_id,))
    return cur.fetchone()


def list_currencies(db):
    return [currency_to_wire(r) for r in db.fetchall("SELECT * FROM currencies ORDER BY code")]


def get_currency(db, code):
    row = db.fetchone("SELECT * FROM currencies WHERE code = %s", (code,))
    if row is None:
        raise errors.NotFound("currency not found")
    return currency_to_wire(row)


def create_direction(db, currency_in, currency_out, exchange_type, values, actor):
    with db.transaction() as cur:
        cur.execute("SELECT code FROM currencies WHERE code = ANY(%s)", ([currency_in, currency_out],))
        known = {r["code"] for r in cur.fetchall()}
        missing = {k: ["unknown currency"] for k, c in (("currency_in", currency_in), ("currency_out", currency_out))
                   if c not in known}
        if missing:
            raise errors.ValidationFailed("unknown currency", missing)
        cur.execute(
            "INSERT INTO directions (currency_in, currency_out, exchange_type, rate_in, rate_out, fee, min_amount, "
            "max_amount, payment_window_minutes, active, monitor_params, city, floating) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (currency_in, currency_out, exchange_type) DO NOTHING RETURNING id",
            (currency_in, currency_out, exchange_type, values["rate_in"], values["rate_out"], values.get("fee", 0),
             values["min_amount"], values["max_amount"], values.get("payment_window_minutes", 30),
             values.get("active", True), values.get("monitor_params", []), values.get("city"),
             values.get("floating", False)))
        row = cur.fetchone()
        if row is None:
            raise errors.Conflict("this direction exists already")
        publish_directions_changed(cur, [row["id"]], "direction_created")
        _audit(cur, actor, "direction_create", dict(plain_values(values), currency_in=currency_in,
                                                    currency_out=currency_out, exchange_type=exchange_type,
                                                    direction_id=row["id"]))
    return get_direction(db, row["id"])


def update_direction(db, direction_id, values, actor):
    if not values:
        return get_direction(db, direction_id)
    with db.transaction() as cur:
        cur.execute("SELECT * FROM directions WHERE id = %s FOR UPDATE", (direction_id,))
        before = cur.fetchone()
        if before is None:
            raise errors.NotFound("direction not found")
        try:
            rules.check_amount_range(values.get("min_amount", before["min_amount"]),
                                     values.get("max_amount", before["max_amount"]))
        except RuleError as exc:
            raise errors.ValidationFailed(exc.message, exc.fields)
        rate_moved = any(k in values and values[k] != before[k] for k in ("rate_in", "rate_out"))
        cur.execute("UPDATE directions SET " + ", ".join("%s = %%(%s)s" % (k, k) for k in values) +
                    (", rate_updated_at = now()" if rate_moved else "") +
                    ", updated_at = now() WHERE id = %(id)s", dict(values, id=direction_id))
        _audit(cur, actor, "direction_update", {"direction_id": direction_id, "changes": plain_values(values),
                                                "before": plain_values({k: before[k] for k in values})})
        publish_directions_changed(cur, [direction_id], "direction_updated")
    return get_direction(db, direction_id)


def _check_monitor_code_free(cur, code, values):
    """A monitor code names one currency (UNIQUE in the table): said by field, not as a failed insert."""
    if values.get("monitor_code"):
        cur.execute("SELECT code FROM currencies WHERE monitor_code = %s AND code <> %s",
                    (values["monitor_code"], code))
        other = cur.fetchone()
        if other:
            raise errors.ValidationFailed("monitor code in use", {
                "monitor_code": ["already the monitor code of %s" % other["code"]]})


def create_currency(db, code, precision, values, actor):
    with db.transaction() as cur:
        _check_monitor_code_free(cur, code, values)
        cur.execute("INSERT INTO currencies (code, name, precision, payment_system, account, reserve, active, "
                    "monitor_code) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (code) DO NOTHING "
                    "RETURNING code",
                    (code, values["name"], precision, values["payment_system"], values["account"],
                     values.get("reserve", 0), values.get("active", True), values.get("monitor_code")))
        if cur.fetchone() is None:
            raise errors.Conflict("this currency exists already")
        _audit(cur, actor, "currency_create", dict(plain_values(values), code=code, precision=precision))
    return get_currency(db, code)


def update_currency(db, code, values, actor):
    with db.transaction() as cur:
        cur.execute("SELECT * FROM currencies WHERE code = %s FOR UPDATE", (code,))
        before = cur.fetchone()
        if before is None:
            raise errors.NotFound("currency not found")
        reset = rules.reserve_reset(before, values)
        _check_monitor_code_free(cur, code, values)
        if values:
            sets = ["%s = %%(%s)s" % (k, k) for k in values]
            if reset:
                sets.append("reserve = 0, reserve_observed_at = NULL")
            elif "reserve" in values:
                sets.append("reserve_observed_at = now()")   # stated by the admin: newer than what was observed
            cur.execute("UPDATE currencies SET " + ", ".join(sets) + ", updated_at = now() WHERE code = %(code)s",
                        dict(values, code=code))
            detail = {"code": code, "changes": plain_values(values),
                      "before": plain_values({k: before[k] for k in values})}
            if reset:
                detail.update(reserve_reset=True, reserve_before=plain(before["reserve"]))
            _audit(cur, actor, "currency_update", detail)
            # its monitor code, activity or reserve shows in the monitors' file
            publish_directions_changed(cur, directions_of_currency(cur, code), "currency_updated")
    currency = get_currency(db, code)
    if reset:
        currency["notice"] = rules.reserve_reset_notice(currency["payment_system"], currency["account"])
    return currency


def add_missing(db, currencies, directions):
    """Currencies (code, name, precision, account, reserve[, payment system: sandbox when absent]) and directions (currency_in, currency_out,
    exchange_type, rate_in, rate_out, fee, min, max, window minutes) that do not exist yet: the demo data."""
    with db.transaction() as cur:
        for code, name, precision, account, reserve, *system in currencies:
            cur.execute(
                "INSERT INTO currencies (code, name, precision, payment_system, account, reserve) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (code) DO NOTHING",
                (code, name, precision, system[0] if system else "sandbox", account, reserve))
        for cin, cout, kind, rate_in, rate_out, fee, lo, hi, window in directions:
            cur.execute(
                "INSERT INTO directions (currency_in, currency_out, exchange_type, rate_in, rate_out, fee, "
                "min_amount, max_amount, payment_window_minutes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (currency_in, currency_out, exchange_type) DO NOTHING",
                (cin, cout, kind, rate_in, rate_out, fee, lo, hi, window))


def add_missing_monitor_codes(db, codes):
    """{currency: monitor code} set where the currency has none and the code is free (the demo data)."""
    with db.transaction() as cur:
        for code, monitor_code in codes.items():
            cur.execute("UPDATE currencies SET monitor_code = %s WHERE code = %s AND monitor_code IS NULL "
                        "AND NOT EXISTS (SELECT 1 FROM currencies WHERE monitor_code = %s)",
                        (monitor_code, code, monitor_code))
            if cur.rowcount:
                publish_directions_changed(cur, directions_of_currency(cur, code), "currency_updated")


def hold_reserve_statement(code, amount):
    """The hold as the LAST statement of a transaction's final round trip (store/orders.py create_order): the
    currency's row is then locked only from this statement to the commit, not for the rest of the transaction,
    so orders on one currency do not queue behind each other's other statements. It returns one row (what
    remains available) if the amount fits, none if not."""
    return ("UPDATE currencies SET held = held + %(amount)s WHERE code = %(code)s AND reserve - held >= %(amount)s "
            "RETURNING reserve - held AS available", {"amount": amount, "code": code})


def available_reserve(cur, code):
    cur.execute("SELECT reserve - held AS available FROM currencies WHERE code = %s", (code,))
    return cur.fetchone()["available"]


def change_held(code, delta):
    """The statement moving a currency's held amount by `delta` (a transition's hold or release, batched with its
    history and audit rows)."""
    return "UPDATE currencies SET held = held + %s WHERE code = %s", (delta, code)
