"""Child process of one CSV export: run the COPY statement read from stdin and stream its output to stdout.

Why a child process: the nameko service is eventlet-green, and eventlet makes psycopg2 green too, which refuses
`COPY` (psycopg2: "copy_expert cannot be used with an asynchronous callback"). A plain process runs PostgreSQL's own
`COPY ... TO STDOUT` at full speed, its memory is bounded by its buffers (1 MiB) and is returned to the system when
it exits, and a client that goes away ends it (the parent kills it; PostgreSQL cancels the query).

Protocol: stdin = the COPY statement (UTF-8, built in store.py); stdout = the CSV bytes; on success the last
stderr line is `rows=N` and the exit code 0; on failure the error text on stderr and exit code 1. The parent
passes the database URL in REPORTING_EXPORT_DATABASE_URL (so no password shows in `ps`) and the statement timeout
in REPORTING_EXPORT_STATEMENT_TIMEOUT_MS. Only psycopg2 is imported, so the child starts in a few tens of milliseconds.
"""
import fcntl
import os
import sys

import psycopg2

CHUNK = 1 << 20
F_SETPIPE_SZ = 1031  # Linux: a 1 MiB pipe means fewer, larger reads in the parent


def main():
    sql = sys.stdin.buffer.read().decode("utf-8")
    try:
        fcntl.fcntl(1, F_SETPIPE_SZ, CHUNK)
    except OSError:
        pass  # not a pipe, or not Linux: the default size works too
    conn = None
    try:
        # The statement timeout is a connection option, so the only SQL this child runs is the COPY it is given.
        timeout = os.environ.get("REPORTING_EXPORT_STATEMENT_TIMEOUT_MS")
        options = {"options": "-c statement_timeout=%d" % int(timeout)} if timeout else {}
        conn = psycopg2.connect(os.environ["REPORTING_EXPORT_DATABASE_URL"],
                                application_name="reporting-export", client_encoding="UTF8", **options)
        # One snapshot for the whole file: rows committed meanwhile are not half in it.
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        out = open(1, "wb", buffering=CHUNK, closefd=False)
        with conn.cursor() as cur:
            cur.copy_expert(sql, out)
            out.flush()
            rows = cur.rowcount
        conn.rollback()
    except BrokenPipeError:
        return 2  # the reader went away: nothing to report
    except (psycopg2.Error, OSError, KeyError, ValueError) as exc:
        sys.stderr.write(("export failed: %s: %s" % (type(exc).__name__, exc))[:2000] + "\n")
        return 1
    finally:
        if conn is not None:
            conn.close()
    sys.stderr.write("rows=%d\n" % rows)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    os._exit(code)  # skip flushing stdout again at exit: a closed pipe would only raise once more
