"""Liveness, readiness (every service answers RPC) and Prometheus metrics."""
import time

from flask import Blueprint, current_app, jsonify

from gateway import metrics, rpc
from libs.rpc_client import RpcError

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    services, ready = {}, True
    for name in current_app.config["READY_SERVICES"]:
        started = time.perf_counter()
        try:
            rpc.client().call(name, "ping", timeout=2.0)
            services[name] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
        except (RpcError, Exception) as exc:  # noqa: BLE001 - any failure means not ready
            services[name] = {"ok": False, "error": type(exc).__name__}
            ready = False
    try:
        current_app.extensions["db"].fetchone("SELECT 1")
        services["database"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001
        services["database"] = {"ok": False, "error": type(exc).__name__}
        ready = False
    return jsonify({"ready": ready, "services": services}), (200 if ready else 503)


@bp.get("/api/v1/echo")
def echo():
    """One round trip through this process's RPC client to the orders service and back, with no business logic:
    a deep health check for load balancers, and the benchmark's yardstick for what the messaging alone costs."""
    return jsonify({"echo": rpc.service("orders").echo("ok")})


@bp.get("/metrics")
def metrics_endpoint():
    return metrics.exposition()
