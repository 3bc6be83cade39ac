"""gunicorn settings for the gateway (make run, Dockerfile). Threads, not gevent: the RPC client is thread-safe
and one per process (libs/rpc_client.py)."""
import os
import shutil

bind = "%s:%s" % (os.environ.get("GATEWAY_HOST", "0.0.0.0"), os.environ.get("GATEWAY_PORT", "8000"))
# One worker per core, leaving one core to the services, broker and database that share the machine with
# `make run` (on 2 cores one worker measured ~5 % more orders/s than two: docs/performance.md).
workers = int(os.environ.get("GATEWAY_WORKERS") or max(1, (os.cpu_count() or 2) - 1))
worker_class = "gthread"
threads = int(os.environ.get("GATEWAY_THREADS", "16"))
timeout = 30
graceful_timeout = 10
accesslog = os.environ.get("GATEWAY_ACCESS_LOG") or None
max_requests = 0  # recycling workers would leave stale metric files and reconnect RPC for nothing

# Several workers share their metrics through files in one folder (prometheus_client's multiprocess mode). Set
# here, for the gateway's workers only: the other processes of `make run` get the same environment and must not
# switch to that mode.
if os.environ.get("GATEWAY_METRICS_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ["GATEWAY_METRICS_DIR"]


def on_starting(server):
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(worker.pid)
