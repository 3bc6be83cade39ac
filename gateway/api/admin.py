"""Operator API: the request list and page, and every operator action on a request (all audited by orders)."""
from flask import Blueprint, jsonify

from gateway import rpc
from gateway.api import load_body, load_query
from gateway.schemas import (AdminOrdersQuerySchema, CancelSchema, EmptySchema, FinalizeSchema,
                             ProcessSchema)
from gateway.security.caller import actor, require, without_order_token
from gateway.security.staff import ACT, READ

bp = Blueprint("admin_api", __name__, url_prefix="/api/v1/admin")

MAX_ID = 2**63 - 1


def orders():
    return rpc.service("orders")


@bp.get("/orders")
@require(READ)
def list_orders():
    filters = load_query(AdminOrdersQuerySchema)
    for key in ("created_from", "created_to", "updated_from", "updated_to"):
        if key in filters:
            filters[key] = filters[key].isoformat()
    result = orders().list_orders(filters)
    result["items"] = [without_order_token(o) for o in result.get("items", [])]
    return jsonify(result)


@bp.get("/orders/<int:order_id>")
@require(READ)
def get_order(order_id):
    return jsonify(without_order_token(orders().get_order(min(order_id, MAX_ID))))


@bp.post("/orders/<int:order_id>/process")
@require(ACT)
def process(order_id):
    data = load_body(ProcessSchema)
    return jsonify(orders().process(min(order_id, MAX_ID), data["notice"], actor()))


@bp.post("/orders/<int:order_id>/payout")
@require(ACT)
def payout(order_id):
    load_body(EmptySchema)
    return jsonify(orders().request_payout(min(order_id, MAX_ID), actor()))


@bp.post("/orders/<int:order_id>/finalize")
@require(ACT)
def finalize(order_id):
    data = load_body(FinalizeSchema)
    return jsonify(orders().finalize(min(order_id, MAX_ID), data.get("notice"), actor()))


@bp.post("/orders/<int:order_id>/cancel")
@require(ACT)
def cancel(order_id):
    data = load_body(CancelSchema)
    return jsonify(orders().cancel(min(order_id, MAX_ID), data["reason"], actor()))


@bp.delete("/orders/<int:order_id>")
@require(ACT)
def delete(order_id):
    return jsonify(orders().delete(min(order_id, MAX_ID), actor()))


@bp.get("/stats/status-counts")
@require(READ)
def status_counts():
    return jsonify(orders().count_by_status())
