"""Deterministic crash points for fault tests (docs/reliability.md, "Fault tests"): `CRASH_AT=<name>` in a process's
environment makes it exit at that point, as a kill would, so tests can stop it between two named steps."""
import logging
import os

log = logging.getLogger(__name__)


def crash_point(name):
    if os.environ.get("CRASH_AT") == name:
        log.warning("CRASH_AT=%s: exiting now", name)
        os._exit(137)
