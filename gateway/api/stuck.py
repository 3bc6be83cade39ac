"""Operator API of stuck work (docs/architecture.md, "Stuck work"): the money work payments and orders found stuck,
with its age and the repairs it allows, and running one repair. Analysts read; operators and admins repair; each
repair is audited by the service that runs it (payments.audit_log, orders.audit_log) and by the gateway."""
from flask import Blueprint, jsonify
from marshmallow import Schema, fields, validate

from gateway import rpc
from gateway.api import load_body
from gateway.schemas import StrictSchema
from gateway.security.caller import actor, require
from gateway.security.staff import ACT, READ
from libs.contracts import stuck
from libs.rpc_client import ServiceUnavailable

bp = Blueprint("stuck_api", __name__, url_prefix="/api/v1/admin")

MAX_ID = 2**63 - 1


class RepairSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(list(stuck.KINDS)))
    id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_ID),
                        metadata={"description": "the stuck item's id (order, payment, payout or withdrawal)"})
    action = fields.String(required=True, validate=validate.OneOf(list(stuck.ACTIONS)),
                           metadata={"description": "one of the item's `repair` actions"})


class StuckItemSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(list(stuck.KINDS)))
    service = fields.String(validate=validate.OneOf(list(stuck.SERVICES)))
    id = fields.Integer(required=True)
    order_id = fields.Integer(allow_none=True)
    age_seconds = fields.Float(required=True)
    detail = fields.String()
    repair = fields.List(fields.String(validate=validate.OneOf(list(stuck.ACTIONS))))


class StuckListSchema(Schema):
    items = fields.List(fields.Nested(StuckItemSchema), required=True)
    unavailable = fields.List(fields.String(), metadata={"description": "services that did not answer"})


class RepairResultSchema(Schema):
    kind = fields.String()
    id = fields.Integer()
    action = fields.String()
    outcome = fields.String(metadata={"description": "reconcile: what the lookup by key found"})


@bp.get("/stuck")
@require(READ)
def list_stuck():
    """Both services' items, oldest first; a service that does not answer is named, the others still shown."""
    items, unavailable = [], []
    for service in stuck.SERVICES:
        try:
            items.extend(rpc.service(service).list_stuck_work())
        except ServiceUnavailable:
            unavailable.append(service)
    items.sort(key=lambda i: -i["age_seconds"])
    return jsonify({"items": items, "unavailable": unavailable})


@bp.post("/stuck/repair")
@require(ACT)
def repair():
    data = load_body(RepairSchema)
    return jsonify(rpc.service(stuck.service_of(data["kind"])).repair_stuck_work(
        data["kind"], data["id"], data["action"], actor()))


def document(spec, op):
    """Adds this module's schemas and paths to the OpenAPI document (called by gateway/openapi.py)."""
    for name, schema in (("StuckItem", StuckItemSchema), ("StuckList", StuckListSchema),
                         ("StuckRepair", RepairSchema), ("StuckRepairResult", RepairResultSchema)):
        spec.components.schema(name, schema=schema)
    spec.path("/api/v1/admin/stuck", operations={"get": op(
        "Money work that should have moved on and has not (payments and orders), oldest first, with the repairs "
        "each allows", ok=("200", "StuckList"), errors=(), secured=True, tag="admin")})
    spec.path("/api/v1/admin/stuck/repair", operations={"post": op(
        "Run one repair of a stuck item (operator or admin; audited). 409 if it is not stuck (any more)",
        "StuckRepair", ("200", "StuckRepairResult"), ("400", "403", "409", "422"), secured=True, tag="admin")})
