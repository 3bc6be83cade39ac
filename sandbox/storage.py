"""SQL of the sandbox payment system. Every function takes a cursor (RealDictCursor, inside a transaction
opened by the caller with `Database.transaction()`), so the caller decides what commits together."""
import uuid

from sandbox import domain

ACCOUNT_COLUMNS = "account, currency, precision, balance, owner, created_at"
TRANSFER_COLUMNS = ("id, from_account, to_account, amount, currency, reference, idempotency_key, status, "
                    "created_at")
ENTRY_COLUMNS = "cursor, id, account, transfer_id, type, counterparty, amount, currency, reference, created_at"
FAULT_COLUMNS = "id, operation, mode, apply, count, remaining, delay_s, account, created_at"


# --- accounts -----------------------------------------------------------------------------------------------

def new_account_id(currency):
    return "%s-%s" % (currency, uuid.uuid4().hex[:16].upper())


def create_account(cur, currency, balance, owner="", account=None, precision=None):
    """Insert an account; AccountExists if the id is taken."""
    precision = domain.precision_for(currency) if precision is None else precision
    domain.check_new_account(currency, balance, precision)
    account = account or new_account_id(currency)
    cur.execute(
        "INSERT INTO accounts (account, currency, precision, balance, owner) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (account) DO NOTHING RETURNING " + ACCOUNT_COLUMNS,
        (account, currency, precision, balance, owner or ""))
    row = cur.fetchone()
    if row is None:
        raise domain.AccountExists("account %s already exists" % account, {"account": ["already exists"]})
    return row


def ensure_account(cur, account, currency, balance, owner):
    """Create the account unless it exists (seeding); returns (row, created)."""
    cur.execute(
        "INSERT INTO accounts (account, currency, precision, balance, owner) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (account) DO NOTHING RETURNING " + ACCOUNT_COLUMNS,
        (account, currency, domain.precision_for(currency), balance, owner))
    row = cur.fetchone()
    if row is not None:
        return row, True
    return get_account(cur, account), False


def get_account(cur, account, for_update=False):
    cur.execute("SELECT " + ACCOUNT_COLUMNS + " FROM accounts WHERE account = %s"
                + (" FOR UPDATE" if for_update else ""), (account,))
    return cur.fetchone()


def require_account(cur, account, field="account", for_update=False):
    row = get_account(cur, account, for_update=for_update)
    if row is None:
        raise domain.NotFound("unknown account %s" % account, {field: ["unknown account"]})
    return row


def list_accounts(cur, owner=None, currency=None, limit=1000, exclude_owner=None):
    clauses, params = [], []
    if owner is not None:
        clauses.append("owner = %s")
        params.append(owner)
    if exclude_owner is not None:
        clauses.append("owner <> %s")
        params.append(exclude_owner)
    if currency is not None:
        clauses.append("currency = %s")
        params.append(currency)
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    cur.execute("SELECT " + ACCOUNT_COLUMNS + " FROM accounts" + where + " ORDER BY account LIMIT %s",
                params + [limit])
    return cur.fetchall()


def lock_accounts(cur, fields_by_account):
    """Lock the accounts FOR UPDATE one by one in sorted order (the same order in every transaction, so two
    opposite transfers never deadlock). `fields_by_account` maps account id -> request field for a 404."""
    rows = {}
    for account in sorted(fields_by_account):
        rows[account] = require_account(cur, account, field=fields_by_account[account], for_update=True)
    return rows


# --- transfers ----------------------------------------------------------------------------------------------

def get_transfer(cur, transfer_id):
    cur.execute("SELECT " + TRANSFER_COLUMNS + " FROM transfers WHERE id = %s", (transfer_id,))
    return cur.fetchone()


def find_transfer_by_key(cur, idempotency_key):
    cur.execute("SELECT " + TRANSFER_COLUMNS + " FROM transfers WHERE idempotency_key = %s", (idempotency_key,))
    return cur.fetchone()


def _insert_transfer(cur, from_account, to_account, amount, currency, reference, idempotency_key):
    """INSERT the transfer row; None if a concurrent transaction committed the same idempotency key first
    (ON CONFLICT waits for that transaction, so the caller can then read the winner's row)."""
    cur.execute(
        "INSERT INTO transfers (id, from_account, to_account, amount, currency, reference, idempotency_key, status) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (idempotency_key) DO NOTHING RETURNING "
        + TRANSFER_COLUMNS,
        (uuid.uuid4(), from_account, to_account, amount, currency, reference, idempotency_key,
         domain.TRANSFER_COMPLETED))
    return cur.fetchone()


def _insert_entry(cur, transfer, account, type_, counterparty):
    cur.execute(
        "INSERT INTO entries (id, account, transfer_id, type, counterparty, amount, currency, reference, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (uuid.uuid4(), account, transfer["id"], type_, counterparty, transfer["amount"], transfer["currency"],
         transfer["reference"], transfer["created_at"]))


def make_transfer(cur, from_account, to_account, amount, currency, reference="", idempotency_key=None):
    """Move `amount` between two accounts, at most once per idempotency key.

    Returns (transfer_row, created): created is False when the key was already used for the same transfer (the
    original is returned and nothing moves). Raises NotFound, ValidationFailed, InsufficientFunds,
    IdempotencyKeyReused. The caller commits.
    """
    reference = reference or ""
    params = (from_account, to_account, amount, currency, reference)
    if idempotency_key is not None:
        existing = find_transfer_by_key(cur, idempotency_key)
        if existing is not None:
            return domain.check_replay(existing, *params), False
    if from_account == to_account:
        raise domain.ValidationFailed("cannot transfer to the same account",
                                      {"to_account": ["must differ from from_account"]})
    accounts = lock_accounts(cur, {from_account: "from_account", to_account: "to_account"})
    source, target = accounts[from_account], accounts[to_account]
    domain.check_transfer(source, target, amount, currency)
    if idempotency_key is not None:
        # Read again now that we hold the locks: an identical request that held them before us has committed,
        # and READ COMMITTED gives this statement a fresh snapshot. Its transfer wins; we move nothing.
        existing = find_transfer_by_key(cur, idempotency_key)
        if existing is not None:
            return domain.check_replay(existing, *params), False
    domain.check_funds(source, amount)
    transfer = _insert_transfer(cur, from_account, to_account, amount, currency, reference, idempotency_key)
    if transfer is None:
        # Same key, committed meanwhile by a request that locked other accounts (so not the same transfer).
        return domain.check_replay(find_transfer_by_key(cur, idempotency_key), *params), False
    cur.execute("UPDATE accounts SET balance = balance - %s WHERE account = %s", (amount, from_account))
    cur.execute("UPDATE accounts SET balance = balance + %s WHERE account = %s", (amount, to_account))
    _insert_entry(cur, transfer, from_account, "out", to_account)
    _insert_entry(cur, transfer, to_account, "in", from_account)
    return transfer, True


# --- history ------------------------------------------------------------------------------------------------

def history(cur, account, after=None, limit=domain.HISTORY_DEFAULT_LIMIT):
    """Entries of one account with cursor > after, oldest first."""
    cur.execute(
        "SELECT " + ENTRY_COLUMNS + " FROM entries WHERE account = %s AND cursor > %s ORDER BY cursor LIMIT %s",
        (account, after if after is not None else 0, limit))
    return cur.fetchall()


def recent_history(cur, account, limit=20):
    """The newest entries first (for the web page)."""
    cur.execute("SELECT " + ENTRY_COLUMNS + " FROM entries WHERE account = %s ORDER BY cursor DESC LIMIT %s",
                (account, limit))
    return cur.fetchall()


# --- faults -------------------------------------------------------------------------------------------------

def add_fault(cur, operation, mode, count=1, apply="before", delay_s=domain.DEFAULT_TIMEOUT_DELAY, account=None):
    cur.execute(
        "INSERT INTO faults (operation, mode, apply, count, remaining, delay_s, account) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING " + FAULT_COLUMNS,
        (operation, mode, apply, count, count, delay_s, account))
    return cur.fetchone()


def list_faults(cur, include_spent=False):
    where = "" if include_spent else " WHERE remaining > 0"
    cur.execute("SELECT " + FAULT_COLUMNS + " FROM faults" + where + " ORDER BY id")
    return cur.fetchall()


def clear_faults(cur, account=None, fault_id=None):
    if fault_id is not None:
        cur.execute("DELETE FROM faults WHERE id = %s", (fault_id,))
    elif account is not None:
        cur.execute("DELETE FROM faults WHERE account = %s", (account,))
    else:
        cur.execute("DELETE FROM faults")
    return cur.rowcount


_MATCH = "remaining > 0 AND operation IN (%s, 'any') AND (account IS NULL OR account = ANY(%s))"


def take_fault(cur, operation, accounts=()):
    """Consume one pending fault that matches the call, oldest first; None if there is none.

    The row lock makes concurrent callers take turns, so a fault with count N fails exactly N calls. A caller that
    waited on a fault another caller just used up looks again (the UPDATE re-checks `remaining` after the wait).
    """
    accounts = [a for a in accounts if isinstance(a, str)]
    for _ in range(5):
        cur.execute(
            "UPDATE faults SET remaining = remaining - 1 WHERE id = ("
            " SELECT id FROM faults WHERE " + _MATCH + " ORDER BY id LIMIT 1 FOR UPDATE"
            ") AND remaining > 0 RETURNING " + FAULT_COLUMNS,
            (operation, accounts))
        row = cur.fetchone()
        if row is not None:
            return row
        cur.execute("SELECT 1 FROM faults WHERE " + _MATCH + " LIMIT 1", (operation, accounts))
        if cur.fetchone() is None:
            return None
    return None
