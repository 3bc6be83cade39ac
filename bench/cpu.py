"""CPU time of every process of a running system, read from /proc (Linux).

The system is the processes `make run` starts (their working directory is the repository: honcho, gunicorn, the
nameko services, the sandbox, the SMTP server) plus the PostgreSQL and RabbitMQ servers they use (the
PostgreSQL server's own processes and the backends connected to the system's database; every RabbitMQ process). The load generator itself is left out.

`SystemCpu.snapshot()` returns {pid: (group, cpu_seconds)}; `delta(before, after)` sums what each group used
between the two. A process that started in between counts from zero; one that ended in between loses the time it
used after the first snapshot (short-lived processes are rare in a running system: pools keep connections).
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")

# (word in the command line, group) in order; the first that matches names the process.
GROUPS = [("services.orders", "orders"), ("services.payments", "payments"), ("services.notifier.devsmtp", "smtp"),
          ("services.notifier", "notifier"), ("services.reporting", "reporting"), ("gunicorn", "gateway"),
          ("sandbox", "sandbox"), ("honcho", "honcho")]


def _read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def _our_backend(pid, database):
    """The server's own processes (writer, WAL, checkpointer...) and the backends connected to our database;
    not the backends of other databases on the same server (another project's tests, say)."""
    title = (_read("/proc/%d/cmdline" % pid, "rb") or b"").replace(b"\0", b" ").decode("utf-8", "replace")
    words = title.split()   # "postgres: 15/main: <user> <database> <host>(<port>) <state>"
    client = [i for i, w in enumerate(words) if "(" in w or w == "[local]"]
    if not database or not client:   # no client address: one of the server's own processes
        return True
    return words[client[0] - 1] == database


def _group(pid, root, database=None):
    stat = _read("/proc/%d/stat" % pid)
    if stat is None:
        return None, None
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK   # utime + stime
    if comm == "postgres" or comm.startswith("postgres"):
        return ("postgresql", cpu) if _our_backend(pid, database) else (None, None)
    if comm in ("beam.smp", "erl_child_setup", "epmd", "inet_gethost"):
        return "rabbitmq", cpu
    try:
        cwd = os.readlink("/proc/%d/cwd" % pid)
    except OSError:
        return None, None
    if cwd != root:
        return None, None
    cmdline = (_read("/proc/%d/cmdline" % pid, "rb") or b"").replace(b"\0", b" ").decode("utf-8", "replace")
    for word, group in GROUPS:
        if word in cmdline:
            return group, cpu
    return "other", cpu


class SystemCpu:
    def __init__(self, root=ROOT, exclude=None, database=None):
        self.root = os.path.realpath(root)
        self.database = database
        self.exclude = set(exclude or ()) | {os.getpid()}

    def snapshot(self):
        taken = {}
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in self.exclude:
                continue
            group, cpu = _group(int(name), self.root, self.database)
            if group is not None:
                taken[int(name)] = (group, cpu)
        return taken


def delta(before, after):
    """{group: cpu seconds used between the snapshots}."""
    used = {}
    for pid, (group, cpu) in after.items():
        start = before.get(pid, (group, 0.0))[1]
        used[group] = used.get(group, 0.0) + max(0.0, cpu - start)
    return used
