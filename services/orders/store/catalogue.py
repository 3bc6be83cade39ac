"""Directions and currencies: what customers choose from and admins change (docs/pages.md). Every change is
audited in orders.audit_log with its before and after. Reserves, what open orders hold of them, and why an edit of
the payout account resets one: docs/architecture.md, "Reserves"."""
from libs import errors
from libs.audit import write_audit
from services.orders.domain import RuleError, catalogue as rules
from services.orders.schemas import currency_to_wire, direction_to_wire, plain, plain_values

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
    write_audit(cur, actor, action, "ok", detail, order_id=None, from_status=None, to_status=None)


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
            "max_amount, payment_window_minutes, active) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (currency_in, currency_out, exchange_type) DO NOTHING RETURNING id",
            (currency_in, currency_out, exchange_type, values["rate_in"], values["rate_out"], values.get("fee", 0),
             values["min_amount"], values["max_amount"], values.get("payment_window_minutes", 30),
             values.get("active", True)))
        row = cur.fetchone()
        if row is None:
            raise errors.Conflict("this direction exists already")
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
        cur.execute("UPDATE directions SET " + ", ".join("%s = %%(%s)s" % (k, k) for k in values) +
                    ", updated_at = now() WHERE id = %(id)s", dict(values, id=direction_id))
        _audit(cur, actor, "direction_update", {"direction_id": direction_id, "changes": plain_values(values),
                                                "before": plain_values({k: before[k] for k in values})})
    return get_direction(db, direction_id)


def create_currency(db, code, precision, values, actor):
    with db.transaction() as cur:
        cur.execute("INSERT INTO currencies (code, name, precision, payment_system, account, reserve, active) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (code) DO NOTHING RETURNING code",
                    (code, values["name"], precision, values["payment_system"], values["account"],
                     values.get("reserve", 0), values.get("active", True)))
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


def hold_reserve(cur, code, amount):
    """Hold `amount` of the currency's reserve for a new order, in the order's transaction: compare and add in one
    statement, so concurrent orders queue on the currency's row and each sees what the previous ones hold.
    None if it does not fit, else what remains available."""
    cur.execute("UPDATE currencies SET held = held + %(amount)s WHERE code = %(code)s AND reserve - held >= %(amount)s "
                "RETURNING reserve - held AS available", {"amount": amount, "code": code})
    row = cur.fetchone()
    return row["available"] if row else None


def available_reserve(cur, code):
    cur.execute("SELECT reserve - held AS available FROM currencies WHERE code = %s", (code,))
    return cur.fetchone()["available"]


def change_held(code, delta):
    """The statement moving a currency's held amount by `delta` (a transition's hold or release, batched with its
    history and audit rows)."""
    return "UPDATE currencies SET held = held + %s WHERE code = %s", (delta, code)
