"""One RPC client per gateway process, shared by all request threads (libs/rpc_client.py explains why)."""
import threading

from flask import current_app

from libs.rpc_client import RpcClient, ServiceProxy

_lock = threading.Lock()


def client():
    app = current_app._get_current_object()
    rpc = app.extensions.get("rpc")
    if rpc is None:
        with _lock:
            rpc = app.extensions.get("rpc")
            if rpc is None:
                rpc = RpcClient(app.config["AMQP_URI"], timeout=app.config["RPC_TIMEOUT"], name="gateway")
                app.extensions["rpc"] = rpc
    return rpc


def service(name):
    return ServiceProxy(client(), name)
