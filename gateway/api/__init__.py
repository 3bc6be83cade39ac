"""HTTP API blueprints under /api/v1."""
from flask import request

from gateway.errors import ApiError


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
    return schema.load(data)


def load_query(schema):
    return schema.load(request.args.to_dict())
