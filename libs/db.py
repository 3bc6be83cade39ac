"""PostgreSQL access: a small thread/greenlet-safe pool per process, one schema per service.

Each service sees only its own schema (search_path), so nobody reads another's tables by accident.
"""
import contextlib
import logging
import select
import threading
import time

import psycopg2
import psycopg2.extensions
import psycopg2.extras
from nameko.extensions import DependencyProvider

from libs import config

log = logging.getLogger(__name__)

# NUMERIC comes back as Decimal (psycopg2's default); uuid columns as uuid.UUID.
psycopg2.extras.register_uuid()


class Database:
    """A bounded pool of connections with `search_path` set to one schema.

    `transaction()` yields a RealDictCursor inside BEGIN ... COMMIT; an exception rolls back.
    Connections that broke (server restart, pg_terminate_backend) are dropped instead of returned.
    """

    def __init__(self, url=None, schema=None, maxconn=20, application_name=None):
        self.url = url or config.database_url()
        self.schema = schema
        self.application_name = application_name or schema or "exchanger"
        self._idle = []
        self._closed = False
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(maxconn)

    def _connect_kwargs(self):
        options = "-c search_path=%s,public" % self.schema if self.schema else None
        kwargs = {"application_name": self.application_name}
        if options:
            kwargs["options"] = options
        return kwargs

    def _getconn(self):
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return psycopg2.connect(self.url, **self._connect_kwargs())

    def _putconn(self, conn, close=False):
        if close or conn.closed or self._closed:
            try:
                conn.close()
            except psycopg2.Error:
                pass
            return
        with self._lock:
            self._idle.append(conn)

    def connect(self, autocommit=False):
        """A connection outside the pool (LISTEN, COPY streaming); the caller closes it."""
        conn = psycopg2.connect(self.url, **self._connect_kwargs())
        conn.autocommit = autocommit
        return conn

    @contextlib.contextmanager
    def connection(self):
        # At most maxconn connections; callers wait for a free one instead of failing. Idle connections are
        # kept (psycopg2's own pool closes all above minconn on return: a reconnect on nearly every call).
        self._slots.acquire()
        conn = None
        broken = False
        try:
            conn = self._getconn()
            yield conn
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            broken = True
            raise
        finally:
            if conn is not None:
                if not broken and not conn.closed and conn.status != psycopg2.extensions.STATUS_READY:
                    try:
                        conn.rollback()
                    except psycopg2.Error:
                        broken = True
                self._putconn(conn, close=broken)
            self._slots.release()

    @contextlib.contextmanager
    def transaction(self, isolation=None):
        with self.connection() as conn:
            if isolation:
                conn.set_session(isolation_level=isolation)
            try:
                with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    yield cur
                conn.commit()
            except BaseException:
                if not conn.closed:
                    conn.rollback()
                raise
            finally:
                if isolation and not conn.closed:
                    conn.set_session(isolation_level="DEFAULT")

    def fetchall(self, sql, params=None):
        with self.transaction() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def fetchone(self, sql, params=None):
        with self.transaction() as cur:
            cur.execute(sql, params)
            return cur.fetchone()

    def close(self):
        """Close idle connections; those in use are closed when returned."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            try:
                conn.close()
            except psycopg2.Error:
                pass


def execute_batch(cur, statements):
    """Run several statements in ONE round trip: [(sql, params), ...] are bound client-side and sent together.
    For writes that return nothing (history, audit, outbox rows); each round trip costs more than the SQL."""
    cur.execute(b";\n".join(cur.mogrify(sql, params) for sql, params in statements))


class Listener:
    """Waits for PostgreSQL NOTIFY on one channel, so a loop wakes at a commit instead of at its next poll.

    Owned by one loop: it opens its LISTEN connection lazily and must be closed by that same loop (closing it from
    another thread while the loop waits in select() would be a second simultaneous read on one socket)."""

    def __init__(self, connect, channel):
        self.connect = connect          # () -> an autocommit connection, called when (re)connecting
        self.channel = channel
        self._conn = None

    def wait(self, timeout, pause=time.sleep):
        """Block until a notification or `timeout`; on a database error, reconnect next time and `pause`."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self.connect()
                with self._conn.cursor() as cur:
                    cur.execute("LISTEN %s" % self.channel)
            ready, _, _ = select.select([self._conn], [], [], timeout)
            if ready:
                self._conn.poll()
                self._conn.notifies.clear()
        except (psycopg2.Error, OSError, ValueError):
            self.close()
            pause(timeout)

    def close(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
        self._conn = None


class DatabaseProvider(DependencyProvider):
    """nameko dependency: one pool per container, the same (concurrency-safe) Database for every worker."""

    def __init__(self, schema, maxconn=None):
        self.schema = schema
        self.maxconn = maxconn

    def setup(self):
        cfg = self.container.config
        maxconn = self.maxconn or int(cfg.get("DB_POOL_SIZE", cfg.get("max_workers", 10) + 2))
        self.database = Database(
            url=cfg.get("DATABASE_URL") or config.database_url(),
            schema=self.schema, maxconn=maxconn,
            application_name=self.container.service_name)

    def stop(self):
        self.database.close()

    def kill(self):
        self.database.close()

    def get_dependency(self, worker_ctx):
        return self.database
