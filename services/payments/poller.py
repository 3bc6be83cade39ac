"""Polling the exchanger's payment accounts for incoming payments, each credited once.

One timer per service instance calls `poll_all()`: every configured account that is due is polled, up to
`concurrency` at once (green threads; HTTP connections are pooled by the adapter).

At most one poller per account across all instances: a PostgreSQL advisory lock taken with
pg_try_advisory_lock on the poller's own connection. It never waits (a busy account is simply skipped), it holds
no transaction open while the payment system answers, and it is released at once if the process dies (the
connection closes). Why not `SELECT ... FOR UPDATE SKIP LOCKED` on the accounts row: that keeps a transaction
(and a row lock) open across the HTTP call, and psycopg2 is not green here, so any other green thread of the same
process that touched the row would block the whole process while the lock holder waits for its turn to run.

Each poll re-reads an overlap window: it starts from the oldest of the last OVERLAP_POLLS cursors, not from the
newest. The UNIQUE(account, external_id) constraint makes re-reading safe, and an entry that a payment system
shows late, below a cursor we already passed, is still found. The cursor moves in the same transaction that
ingests the entries. The first tick runs at start (the timer is eager) and reads every page: the catch-up.
"""
import logging
import time

import eventlet
import psycopg2
import psycopg2.extras

from libs import money
from libs.contracts import events
from services.payments import metrics
from services.payments.adapters import ProviderError

log = logging.getLogger(__name__)


class Poller:
    def __init__(self, matching, adapters, accounts, poll_seconds=2.0, concurrency=20, overlap_polls=2,
                 page_limit=500, max_pages=20, balance_refresh_seconds=60.0, chain_follower=None):
        self.matching = matching
        self.db = matching.db
        self.store = matching.store
        self.adapters = adapters
        self.accounts = accounts
        self.poll_seconds = float(poll_seconds)
        self.concurrency = max(1, int(concurrency))
        self.overlap_polls = max(0, int(overlap_polls))
        self.page_limit = int(page_limit)
        self.max_pages = max(1, int(max_pages))
        self.balance_refresh_seconds = float(balance_refresh_seconds)
        self.account_ids = None
        # Chain accounts (adapters with follows_chain) are read block by block (chains.py), not by pages.
        self.chain_follower = chain_follower

    def _lock_key(self, account_id):
        # Text key hashed by PostgreSQL: several schemas (test copies) in one database never share a lock.
        return "payments-poll:%s:%d" % (self.db.schema, account_id)

    def ensure_accounts(self):
        if self.account_ids is None:
            self.account_ids = self.store.sync_accounts(self.accounts)
        return self.account_ids

    # -- one tick ----------------------------------------------------------------------------------------------
    def poll_all(self, force=False):
        """Poll every due account of this instance's configuration; returns {account: outcome}."""
        ids = self.ensure_accounts()
        if not ids:
            return {}
        # Due: not polled (by any instance) in the last half interval. Two instances' timers then share the work
        # instead of both reading every account every interval.
        rows = self.store.due_accounts(ids.values(), force, self.poll_seconds / 2)
        results = {}
        pool = eventlet.GreenPool(self.concurrency)
        for row, outcome in zip(rows, pool.imap(lambda r: self._poll_safely(r, force), rows)):
            results[row["account"]] = outcome
        self.refresh_metrics()
        return results

    def _poll_safely(self, row, force):
        try:
            return self.poll_account(row["id"], force=force, name=row["account"])
        except Exception:  # noqa: BLE001 - one account's trouble must not stop the others
            log.exception("poll of account %s failed", row["account"])
            return "error"

    def refresh_metrics(self):
        for row in self.store.last_polled_ok((self.account_ids or {}).values()):
            metrics.set_last_ok(row["account"], row["polled_ok_at"].timestamp() if row["polled_ok_at"] else 0)

    # -- one account -------------------------------------------------------------------------------------------
    def poll_account(self, account_id, force=False, name=None):
        """Read the account's new history and ingest it. Returns 'ok', 'busy' (another poller has it),
        'fresh' (polled a moment ago by someone else) or 'provider_error'."""
        key = self._lock_key(account_id)
        with self.db.connection() as conn:
            cur = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
            got = self.store.try_poll_lock(cur, key)
            conn.commit()
            if not got:
                metrics.POLLS.labels(name or str(account_id), "busy").inc()
                return "busy"
            try:
                return self._poll_locked(conn, cur, account_id, force)
            finally:
                try:
                    conn.rollback()
                    self.store.poll_unlock(cur, key)
                    conn.commit()
                except psycopg2.Error:
                    conn.close()  # a closed session holds no advisory lock

    def _poll_locked(self, conn, cur, account_id, force):
        account = self.store.account_to_poll(cur, account_id, self.poll_seconds / 2)
        conn.commit()
        if account is None:
            return "gone"
        if account["fresh"] and not force:
            return "fresh"  # another instance polled it between our listing and our lock
        adapter = self.adapters[account["system"]]
        if getattr(adapter, "follows_chain", False):
            return self._follow_chain(conn, cur, account, adapter)
        log_ = list(account["cursor_log"] or [])
        read_from = log_[0] if log_ else account["cursor"]
        cursor = account["cursor"]
        first_chunk = True
        seen = 0
        started = time.monotonic()
        while True:
            try:
                entries, next_cursor, has_more = self._read(adapter, account["account"], read_from)
            except ProviderError as exc:
                self.store.record_poll_error(cur, account_id, str(exc))
                conn.commit()
                metrics.POLLS.labels(account["account"], "provider_error").inc()
                log.warning("poll of %s: %s", account["account"], exc)
                return "provider_error"
            seen += len(entries)
            # Nothing after the (older) overlap start means nothing after our cursor either: keep it. Cursors
            # are opaque, so this is the only comparison we make.
            new_cursor = next_cursor if next_cursor is not None and entries else cursor
            if first_chunk and new_cursor != cursor and cursor is not None:
                log_ = (log_ + [cursor])[-self.overlap_polls:] if self.overlap_polls else []
            first_chunk = False
            try:
                created = self.matching.ingest(cur, account, entries)
                self.store.record_poll(cur, account_id, new_cursor, log_, len(created))
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            cursor = new_cursor
            if not has_more:
                break
            read_from = cursor
        metrics.POLLS.labels(account["account"], "ok").inc()
        self._maybe_refresh_balance(conn, cur, adapter, account, seen)
        if seen:
            log.debug("polled %s: %d entries in %.0f ms", account["account"], seen,
                      (time.monotonic() - started) * 1000)
        return "ok"

    def _follow_chain(self, conn, cur, account, adapter):
        try:
            seen = self.chain_follower.follow(conn, cur, account, adapter)
        except ProviderError as exc:
            conn.rollback()
            self.store.record_poll_error(cur, account["id"], str(exc))
            conn.commit()
            metrics.POLLS.labels(account["account"], "provider_error").inc()
            log.warning("following %s: %s", account["system"], exc)
            return "provider_error"
        metrics.POLLS.labels(account["account"], "ok").inc()
        self._maybe_refresh_balance(conn, cur, adapter, account, seen)
        return "ok"

    def _read(self, adapter, account, read_from):
        """Up to max_pages pages from read_from -> (entries, next_cursor, has_more)."""
        entries, cursor = [], read_from
        for _ in range(self.max_pages):
            page = adapter.list_incoming(account, cursor, self.page_limit)
            entries.extend(page.entries)
            cursor = page.next_cursor if page.next_cursor is not None else cursor
            if not page.has_more:
                return entries, cursor, False
        return entries, cursor, True

    def _maybe_refresh_balance(self, conn, cur, adapter, account, seen):
        """Reserves follow the payout accounts' balances: read the balance when the history moved (a payment in,
        a payout out) or when it is older than balance_refresh_seconds, and announce a change."""
        stale = account["balance_at"] is None or (
            time.time() - account["balance_at"].timestamp() > self.balance_refresh_seconds)
        if not seen and not (account["payout"] and stale):
            return
        try:
            balance = adapter.balance(account["account"])
        except ProviderError as exc:
            log.warning("balance of %s: %s", account["account"], exc)
            return
        try:
            observed_at = self.store.record_balance(cur, account["id"], balance)
            if account["payout"] and balance != account["balance"]:
                self.store.event(cur, events.BALANCE_CHANGED, {
                    "system": account["system"], "account": account["account"], "currency": account["currency"],
                    "balance": money.to_str(balance),
                    "observed_at": observed_at.isoformat()}, aggregate_id=account["account"])
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        metrics.BALANCE.labels(account["account"], account["currency"]).set(float(balance))
