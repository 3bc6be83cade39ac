"""HTTP API blueprints under /api/v1."""
from flask import request

from gateway.errors import ApiError


def _nul_fields(data, prefix=""):
    """Names of the fields whose text holds a NUL character: PostgreSQL text cannot store it."""
    found = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        name = "%s%s" % (prefix, key)
        if isinstance(value, str) and "\x00" in value:
            found.append(name)
        elif isinstance(value, (dict, list)):
            found.extend(_nul_fields(value, name + "."))
    return found


def _reject_nul(data):
    bad = _nul_fields(data)
    if bad:
        raise ApiError(422, "validation_failed", "invalid input",
                       {name: ["must not contain NUL characters"] for name in bad})


_schemas = {}


def _instance(schema):
    """One instance per schema class: building a marshmallow schema deep-copies its fields, measurable per
    request on the gateway's hot path (docs/performance.md); loading with a shared instance is stateless."""
    if isinstance(schema, type):
        instance = _schemas.get(schema)
        if instance is None:
            instance = _schemas.setdefault(schema, schema())
        return instance
    return schema


def load_body(schema):
    """Parse the JSON body with a strict schema (a class, or an instance with options): 400 if it is not a JSON
    object, 422 with fields otherwise."""
    data = request.get_json(silent=True, force=False)
    if data is None:
        if not request.get_data(cache=True):
            data = {}
        else:
            raise ApiError(400, "bad_request", "the body must be a JSON object")
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    _reject_nul(data)
    return _instance(schema).load(data)


def load_query(schema):
    data = request.args.to_dict()
    _reject_nul(data)
    return _instance(schema).load(data)
