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


def load_body(schema):
    """Parse the JSON body with a strict schema: 400 if it is not a JSON object, 422 with fields otherwise."""
    data = request.get_json(silent=True, force=False)
    if data is None:
        if not request.get_data(cache=True):
            data = {}
        else:
            raise ApiError(400, "bad_request", "the body must be a JSON object")
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    _reject_nul(data)
    return schema.load(data)


def load_query(schema):
    data = request.args.to_dict()
    _reject_nul(data)
    return schema.load(data)
