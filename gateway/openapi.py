"""OpenAPI 3 document of /api/v1, generated with apispec from the marshmallow schemas the endpoints use."""
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, jsonify

from gateway import schemas

bp = Blueprint("openapi", __name__)

ERR = {"$ref": "#/components/responses/Error"}


def _json(schema_name):
    return {"content": {"application/json": {"schema": schema_name}}}


def _op(summary, request=None, ok=("200", None), errors=("422",), secured=False, params=None, tag="orders"):
    op = {"summary": summary, "tags": [tag], "responses": {}}
    code, schema = ok
    op["responses"][code] = {"description": "OK", **(_json(schema) if schema else {})}
    for err in errors + (("401", "403") if secured else ()) + ("503",):
        op["responses"][err] = ERR
    if request is not None:
        op["requestBody"] = {"required": True, **_json(request)}
    if secured:
        op["security"] = [{"bearer": []}]
    if params:
        op["parameters"] = params
    return op


def _path_param(name, schema):
    return {"name": name, "in": "path", "required": True, "schema": schema}


TOKEN = _path_param("token", {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"})
ORDER_ID = _path_param("order_id", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1})


def build_spec():
    spec = APISpec(title="Exchanger API", version="1.0.0", openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()], servers=[{"url": "/"}])
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for name in ("OrderCreate", "Login", "Process", "Finalize", "Cancel", "Empty", "Error", "Direction",
                 "PayTo", "HistoryItem", "Order", "OrderList", "Token"):
        spec.components.schema(name, schema=getattr(schemas, name + "Schema"))
    spec.components.response("Error", {"description": "error", **_json("Error")})
    order_list_params = [
        {"name": n, "in": "query", "required": False, "schema": s} for n, s in [
            ("status", {"type": "string"}),
            ("exchange_type", {"type": "string", "enum": ["auto", "semi_auto", "manual"]}),
            ("direction_id", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}),
            ("email", {"type": "string", "maxLength": 254}),
            ("created_from", {"type": "string", "format": "date-time"}),
            ("created_to", {"type": "string", "format": "date-time"}),
            ("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
            ("cursor", {"type": "string", "pattern": "^[0-9]{1,18}$"})]]
    spec.path("/api/v1/directions", operations={"get": {
        "summary": "Active exchange directions", "tags": ["public"],
        "responses": {"200": {"description": "OK", "content": {"application/json": {
            "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Direction"}}}}}, "503": ERR}}})
    spec.path("/api/v1/echo", operations={"get": {
        "summary": "A round trip through the gateway's RPC pool to the orders service (no business logic)",
        "tags": ["health"], "responses": {"200": {"description": "OK", "content": {"application/json": {
            "schema": {"type": "object", "properties": {"echo": {"type": "string"}}}}}}, "503": ERR}}})
    spec.path("/api/v1/orders", operations={"post": _op(
        "Create an exchange request. An Idempotency-Key is the caller's own (account, bearer token or session "
        "cookie) and bound to the body: a retry gets the same order, another body with the same key a 409",
        "OrderCreate", ("201", "Order"), ("400", "409", "422", "429"), tag="public", params=[
            {"name": "Idempotency-Key", "in": "header", "required": False,
             "schema": {"type": "string", "maxLength": 100}}])})
    spec.path("/api/v1/orders/{token}", operations={"get": _op(
        "An order by its token", ok=("200", "Order"), errors=("404",), params=[TOKEN], tag="public")})
    spec.path("/api/v1/orders/{token}/deposit", operations={"get": _op(
        "A chain-paid order's own deposit address and the transfers seen on it with their confirmations "
        "(docs/chains.md); 404 for an order not paid on a chain", ok=("200", None), errors=("404",),
        params=[TOKEN], tag="public")})
    spec.path("/api/v1/orders/{token}/paid", operations={"post": _op(
        "The customer says they have paid (manual directions)", "Empty", ("200", "Order"),
        ("400", "404", "409", "422"), params=[TOKEN], tag="public")})
    spec.path("/api/v1/orders/{token}/cancel", operations={"post": _op(
        "The customer cancels before paying", "Empty", ("200", "Order"), ("400", "404", "409", "422"),
        params=[TOKEN], tag="public")})
    spec.path("/api/v1/auth/token", operations={"post": _op(
        "Staff sign-in: a bearer token", "Login", ("200", "Token"), ("400", "401", "422"), tag="staff")})
    spec.path("/api/v1/admin/orders", operations={"get": _op(
        "Requests, filtered, newest first", ok=("200", "OrderList"), errors=("422",), secured=True,
        params=order_list_params, tag="admin")})
    spec.path("/api/v1/admin/orders/{order_id}", operations={
        "get": _op("A request with its history and audit trail", ok=("200", "Order"), errors=("404",),
                   secured=True, params=[ORDER_ID], tag="admin"),
        "delete": _op("Hide a request (kept for audit)", ok=("200", "Order"), errors=("404", "409"),
                      secured=True, params=[ORDER_ID], tag="admin")})
    for action, schema, summary in [
            ("process", "Process", "Funds checked: tell the customer (manual)"),
            ("payout", "Empty", "Send the payout through the payment system"),
            ("finalize", "Finalize", "Mark completed (paid by hand), with an optional notice"),
            ("cancel", "Cancel", "Cancel with a reason")]:
        spec.path("/api/v1/admin/orders/{order_id}/%s" % action, operations={"post": _op(
            summary, schema, ("200", "Order"), ("400", "404", "409", "422"), secured=True, params=[ORDER_ID],
            tag="admin")})
    from gateway.api import auth, notifications
    auth.document(spec, _op)
    notifications.document(spec, _op)
    from gateway.api import payments
    payments.document(spec, _op)
    from gateway.api import reports
    reports.document(spec, _op)
    from gateway.api import account, partner  # accounts and the partner program (docs/partners.md)
    account.document(spec, _op)
    partner.document(spec, _op)
    from gateway.api import stuck  # stuck money work (docs/architecture.md, "Stuck work")
    stuck.document(spec, _op)
    from gateway.api import monitors  # the monitors' rates file and its maintenance switch (docs/monitors.md)
    monitors.document(spec, _op)
    from gateway.api import rates  # the rate engine's panel (docs/rates.md)
    rates.document(spec, _op)
    return spec


_cached = None


@bp.get("/api/v1/openapi.json")
def openapi_json():
    global _cached
    if _cached is None:
        _cached = build_spec().to_dict()
    return jsonify(_cached)
