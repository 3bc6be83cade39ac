"""The pages read and act through the gateway's own JSON API, in process: the same schemas, role checks, error
mapping and audit as an API client gets, without a second HTTP hop. An endpoint that does not exist yet (a service
still being built) or a service that does not answer comes back as `available=False`, and the page says so."""
from flask import current_app, request


class ApiResult:
    def __init__(self, status, data=None, response=None, available=True):
        self.status, self.data, self.response, self.available = status, data, response, available

    @property
    def ok(self):
        return self.available and 200 <= self.status < 300

    @property
    def message(self):
        if not self.available:
            return "not available"
        if isinstance(self.data, dict):
            return self.data.get("message") or self.data.get("error") or "error %d" % self.status
        return "error %d" % self.status

    @property
    def fields(self):
        return (self.data or {}).get("fields") or {} if isinstance(self.data, dict) else {}


def route_exists(path, method="GET"):
    adapter = current_app.url_map.bind("localhost")
    try:
        adapter.match(path, method=method)
        return True
    except Exception:  # noqa: BLE001 - NotFound, MethodNotAllowed, RequestRedirect
        return False


def call(method, path, query=None, body=None):
    """Dispatch to the API view for `path` as the signed-in staff member (g.staff, set by the page decorator)."""
    app = current_app._get_current_object()
    kwargs = {"method": method, "query_string": query or {},
              "environ_base": {"REMOTE_ADDR": request.remote_addr or "-"}}
    if body is not None:
        kwargs["json"] = body
    with app.test_request_context(path, **kwargs):
        if request.routing_exception is not None:
            return ApiResult(404, available=False)
        try:
            rv = app.dispatch_request()
        except Exception as exc:  # noqa: BLE001 - mapped by the app's own error handlers, as for a client
            rv = app.handle_user_exception(exc)
        response = app.make_response(rv)
    data = response.get_json(silent=True) if response.is_json else None
    available = response.status_code != 503
    return ApiResult(response.status_code, data, response, available=available)
