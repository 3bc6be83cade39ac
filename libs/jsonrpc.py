"""A small JSON-RPC 1.0/2.0 client over HTTP (requests), for the chain nodes (litecoind's wallet RPC, anvil).

Errors are split the way payouts need them: `RpcError` is the node's own answer (it understood and refused: the
code and message say why); `RpcUnavailable` is no answer at all (refused connection, timeout, 5xx without a JSON
error), after which nothing can be concluded about what the node did.
"""
import itertools
import json
from decimal import Decimal

import requests
from requests.adapters import HTTPAdapter


class RpcUnavailable(Exception):
    """The node did not answer (connection refused, timeout, garbage)."""


class RpcError(Exception):
    """The node answered with an error object."""

    def __init__(self, method, code, message):
        super().__init__("%s: %s (%s)" % (method, message, code))
        self.method = method
        self.code = code
        self.message = message or ""


class JsonRpc:
    def __init__(self, url, auth=None, timeout=5.0, connect_timeout=2.0, version="1.0"):
        self.url = url
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.version = version
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(pool_connections=2, pool_maxsize=16, max_retries=0))
        if auth:
            self.session.auth = tuple(auth)
        self._ids = itertools.count(1)

    def with_path(self, path):
        """The same node, another URL path (litecoind's wallet endpoints are /wallet/<name>)."""
        other = JsonRpc(self.url.rstrip("/") + path, self.session.auth, self.timeout, self.connect_timeout,
                        self.version)
        return other

    def call(self, method, *params):
        body = {"jsonrpc": self.version, "id": next(self._ids), "method": method, "params": list(params)}
        try:
            response = self.session.post(self.url, json=body, timeout=(self.connect_timeout, self.timeout))
        except requests.RequestException as exc:
            raise RpcUnavailable("%s: %s" % (method, exc.__class__.__name__)) from exc
        try:
            # Amounts stay exact: JSON numbers with a fraction are read as Decimal, never float.
            answer = json.loads(response.text, parse_float=Decimal)
        except ValueError as exc:
            raise RpcUnavailable("%s: HTTP %s, not JSON" % (method, response.status_code)) from exc
        if not isinstance(answer, dict):
            raise RpcUnavailable("%s: unexpected answer" % method)
        error = answer.get("error")
        if error:
            if isinstance(error, dict):
                raise RpcError(method, error.get("code"), error.get("message"))
            raise RpcError(method, None, str(error))
        if response.status_code >= 400:
            raise RpcUnavailable("%s: HTTP %s" % (method, response.status_code))
        return answer.get("result")

    def close(self):
        self.session.close()
