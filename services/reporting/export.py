"""The CSV export: the child process that runs the COPY statement (built in store.py) and the stream of its bytes.

PostgreSQL writes the CSV itself (`COPY (SELECT ...) TO STDOUT WITH (FORMAT csv, HEADER)`): RFC 4180 quoting,
one snapshot, about a million rows a second, so nothing is formatted in Python.

The COPY runs in a child process (docs/reporting.md says why): `psql \copy` when psql is installed (~9 MB), else
copy_out.py (Python + psycopg2, ~22 MB). Memory stays flat: the child streams through a 1 MiB pipe and this
process handles one 64 KiB chunk at a time.
"""
import codecs
import fcntl
import logging
import os
import shutil
import subprocess
import sys
import time

from eventlet import hubs

from libs.contracts import events
from services.reporting import metrics, store

log = logging.getLogger(__name__)

# 64 KiB reads: glibc keeps 1 MiB transient buffers on the heap after the first few (its mmap threshold rises),
# which grew this process by ~20 MB; 64 KiB buffers are reused and the process stays flat.
CHUNK = 1 << 16
PIPE_SIZE = 1 << 20   # a 1 MiB pipe: the child writes ahead while we are busy sending
F_SETPIPE_SZ = 1031   # Linux
COPY_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "copy_out.py")


# -- the child process that runs the COPY ----------------------------------------------------------------------
class ExportFailed(Exception):
    pass


class Job:
    """What to run: argv, the script fed on stdin, its environment, and how to read the row count from stderr."""

    def __init__(self, engine, argv, script, env, rows_from):
        self.engine, self.argv, self.script, self.env, self.rows_from = engine, argv, script, env, rows_from


def _rows_python(stderr):
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return int(last[5:]) if last.startswith("rows=") else None


def python_job(select, options, database_url, statement_timeout_ms=None):
    """copy_out.py: a plain Python process with psycopg2 (~22 MB); works wherever the service runs."""
    env = dict(os.environ, REPORTING_EXPORT_DATABASE_URL=database_url)
    if statement_timeout_ms:
        env["REPORTING_EXPORT_STATEMENT_TIMEOUT_MS"] = str(statement_timeout_ms)
    return Job("python", [sys.executable, COPY_OUT], store.copy_statement(select, options), env, _rows_python)


# libpq connection parameters psql takes from the environment (so no password shows in `ps`).
PSQL_ENV = {"host": "PGHOST", "hostaddr": "PGHOSTADDR", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD",
            "dbname": "PGDATABASE", "passfile": "PGPASSFILE", "service": "PGSERVICE", "options": "PGOPTIONS",
            "connect_timeout": "PGCONNECT_TIMEOUT", "sslmode": "PGSSLMODE", "sslcert": "PGSSLCERT",
            "sslkey": "PGSSLKEY", "sslrootcert": "PGSSLROOTCERT", "sslcrl": "PGSSLCRL",
            "gssencmode": "PGGSSENCMODE", "channel_binding": "PGCHANNELBINDING",
            "target_session_attrs": "PGTARGETSESSIONATTRS", "application_name": None}


def _rows_psql(stderr):
    for line in stderr.splitlines():
        if line.startswith("COPY ") and line[5:].strip().isdigit():
            return int(line[5:])
    return None


def psql_job(select, options, database_url, statement_timeout_ms=None, psql=None):
    """`psql \\copy`: the same COPY at the same speed in a ~9 MB process. None when it cannot be used here (no psql
    on PATH, a connection parameter psql cannot take from the environment, or a statement on several lines)."""
    from psycopg2.extensions import parse_dsn  # libpq's own URL parsing
    psql = psql or shutil.which("psql")
    if not psql or "\n" in select or "\r" in select:
        return None
    try:
        params = parse_dsn(database_url)
    except Exception:  # noqa: BLE001 - an unusual URL: the Python engine connects as psycopg2 does elsewhere
        return None
    if set(params) - set(PSQL_ENV):
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({PSQL_ENV[k]: v for k, v in params.items() if PSQL_ENV[k]})
    env.update(PGAPPNAME="reporting-export", PGCLIENTENCODING="UTF8")
    if statement_timeout_ms:
        env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " -c statement_timeout=%d" % statement_timeout_ms).strip()
    argv = [psql, "-X", "-w", "-v", "ON_ERROR_STOP=1", "-f", "-"]
    stdbuf = shutil.which("stdbuf")
    if stdbuf:
        # psql writes each row with stdio (8 KiB pipe writes, ~20k reads and HTTP chunks per million rows here);
        # a 1 MiB stdout buffer makes it write like the Python child: 8x fewer wake-ups in the serving processes.
        argv = [stdbuf, "-o", "1M"] + argv
    return Job("psql", argv, store.psql_script(select, options), env, _rows_psql)


def make_job(engine, select, options, database_url, statement_timeout_ms=None):
    """engine: 'psql', 'python' or 'auto' (psql when it can be used, else python)."""
    if engine in ("auto", "psql"):
        job = psql_job(select, options, database_url, statement_timeout_ms)
        if job is not None or engine == "psql":
            if job is None:
                raise ExportFailed("the psql export engine cannot be used here")
            return job
    return python_job(select, options, database_url, statement_timeout_ms)


def _set_nonblocking(fd):
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


def _green_read(fd, size):
    """os.read that yields to other greenlets while the pipe is empty."""
    while True:
        try:
            return os.read(fd, size)
        except BlockingIOError:
            hubs.trampoline(fd, read=True)


def _error_text(stderr):
    lines = [line for line in stderr.splitlines() if line.strip() and line not in ("BEGIN", "COMMIT", "ROLLBACK")
             and not line.startswith("COPY ")]
    return "\n".join(lines)[-1000:]


class ExportStream:
    """One running export: an iterable of bytes for the HTTP response. `open()` starts the child and waits for its
    first bytes, so a failure before any output is still an error response; `close()` (called by the WSGI server
    when the response ends, also when the client goes away) ends the child and records the metrics once."""

    def __init__(self, job, encoding="utf-8", on_close=None):
        self.job = job
        self.encoding = encoding
        self.on_close = on_close
        self.proc = None
        self.rows = None
        self.bytes = 0
        self.outcome = "aborted"
        self.started = time.perf_counter()
        self._first = b""
        self._closed = False
        self._encoder = None
        if encoding != "utf-8":
            decoder = codecs.getincrementaldecoder("utf-8")()
            # Characters Windows-1251 lacks become '?': one emoji must not fail a million-row export.
            self._encoder = lambda data, final=False: decoder.decode(data, final).encode(encoding, "replace")

    def open(self):
        self.proc = subprocess.Popen(self.job.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=self.job.env, close_fds=True)
        try:
            self.proc.stdin.write(self.job.script.encode("utf-8"))
            self.proc.stdin.close()
            self._fd = self.proc.stdout.fileno()
            try:
                fcntl.fcntl(self._fd, F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass
            _set_nonblocking(self._fd)
            self._first = _green_read(self._fd, CHUNK)
            if not self._first:
                self._finish()  # no output at all: an error before the header, report it as such
        except BaseException:
            self.close()
            raise
        return self

    def _finish(self):
        """At the end of the child's output: its exit code and row count, or ExportFailed."""
        code = self.proc.wait()
        err = self.proc.stderr.read().decode("utf-8", "replace")
        if code != 0:
            self.outcome = "error"
            raise ExportFailed(_error_text(err) or "export process exited with %s" % code)
        self.rows = self.job.rows_from(err)

    def __iter__(self):
        data = self._first
        self._first = b""
        while data:
            self.bytes += len(data)
            yield self._encoder(data) if self._encoder else data
            data = _green_read(self._fd, CHUNK)
        self._finish()
        if self._encoder:
            tail = self._encoder(b"", True)
            if tail:
                yield tail
        self.outcome = "ok"
        # An exception above propagates to the WSGI server, which drops the connection without the final
        # chunk: the client sees a broken download, never a silently short file.

    def close(self):
        if self._closed:
            return
        self._closed = True
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for pipe in (self.proc.stdout, self.proc.stderr):
                try:
                    pipe.close()
                except OSError:
                    pass
        seconds = time.perf_counter() - self.started
        metrics.record_export(self.encoding, self.outcome, seconds, self.rows)
        log.info("export %s (%s): %s rows, %d bytes, %.2fs", self.outcome, self.job.engine, self.rows, self.bytes,
                 seconds)
        if self.on_close is not None:
            self.on_close(self)


def filename(now=None):
    now = now or events.utcnow()
    return now.strftime("orders-%Y%m%d-%H%M%S.csv")
