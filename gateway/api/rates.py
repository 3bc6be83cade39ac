"""Operator API of the rate engine (docs/rates.md): sources with their last values, ages and errors; the manual
source; formulas with a preview, saved with their history; accepting a rate a guard froze on; the rate history of
a direction. Analysts read; operators set manual values and accept rates; admins change formulas. A change decides
a direction's rate, so each asks for a step-up and alerts every admin (docs/security.md, "Step-up and alerts"); it
is audited by the rates service (rates.audit_log, formula_history)."""
from flask import Blueprint, jsonify
from marshmallow import Schema, fields, validate

from gateway import rpc
from gateway.api import load_body
from gateway.schemas import AmountString, StrictSchema
from gateway.security.caller import actor, require
from gateway.security.staff import ACT, ADMIN, READ
from gateway.security.stepup import require_step_up

bp = Blueprint("rates_api", __name__, url_prefix="/api/v1/admin/rates")

MAX_INT = 2**31 - 1
PERCENT = {"description": "percent, above 0 and at most 100, as a decimal string"}


def rates():
    return rpc.service("rates")


def _direction(direction_id):
    """The direction as orders has it (404 if unknown): the formula needs its currencies' precision."""
    return rpc.service("orders").get_direction(min(direction_id, MAX_INT))


class FormulaInputSchema(StrictSchema):
    expression = fields.String(required=True, validate=validate.Length(min=1, max=1000), metadata={
        "description": "e.g. markup(first(binance.USDTRUB.ask, cbr.USD), 1.5) (docs/rates.md, \"Formulas\")"})
    quote = fields.String(validate=validate.OneOf(["out_per_in", "in_per_out"]), metadata={
        "description": "out_per_in: the value is to-currency per 1 from (rate_in 1); in_per_out: the reverse"})
    max_jump_percent = fields.String(metadata=PERCENT)
    max_spread_percent = fields.String(metadata=PERCENT)
    expected_version = fields.Integer(strict=True, metadata={
        "description": "the version the editor saw; another is a 409"})


class ManualValueSchema(StrictSchema):
    value = AmountString(required=True)


class PreviewSchema(Schema):
    value = fields.String(allow_none=True)
    rate_in = fields.String(allow_none=True)
    rate_out = fields.String(allow_none=True)
    frozen = fields.Boolean()
    reason = fields.String(allow_none=True)
    code = fields.String(allow_none=True)
    names = fields.List(fields.String())
    unknown_values = fields.List(fields.String())


@bp.get("/sources")
@require(READ)
def list_sources():
    return jsonify(rates().list_sources())


@bp.put("/manual/<source>/<symbol>")
@require(ACT)
@require_step_up
def set_manual_value(source, symbol):
    data = load_body(ManualValueSchema)
    # names are checked by the rates service (unknown source 404, a bad symbol 422), never trimmed here
    return jsonify(rates().set_manual_value(source, symbol, data["value"], actor()))


@bp.get("/formulas")
@require(READ)
def list_formulas():
    return jsonify(rates().list_formulas())


@bp.get("/formulas/<int:direction_id>")
@require(READ)
def get_formula(direction_id):
    return jsonify(rates().get_formula(min(direction_id, MAX_INT)))


@bp.post("/formulas/<int:direction_id>/preview")
@require(READ)
def preview(direction_id):
    data = load_body(FormulaInputSchema)
    return jsonify(rates().preview_formula(_direction(direction_id), data))


@bp.put("/formulas/<int:direction_id>")
@require(ADMIN)
@require_step_up
def save_formula(direction_id):
    data = load_body(FormulaInputSchema)
    return jsonify(rates().save_formula(_direction(direction_id), data, actor()))


@bp.delete("/formulas/<int:direction_id>")
@require(ADMIN)
@require_step_up
def delete_formula(direction_id):
    return jsonify(rates().delete_formula(min(direction_id, MAX_INT), actor()))


@bp.post("/formulas/<int:direction_id>/accept")
@require(ACT)
@require_step_up
def accept(direction_id):
    return jsonify(rates().accept_rate(min(direction_id, MAX_INT), actor()))


def document(spec, op):
    """Adds this module's schemas and paths to the OpenAPI document (called by gateway/openapi.py)."""
    for name, schema in (("RateFormulaInput", FormulaInputSchema), ("RateManualValue", ManualValueSchema),
                         ("RatePreview", PreviewSchema)):
        spec.components.schema(name, schema=schema)
    did = {"name": "direction_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    spec.path("/api/v1/admin/rates/sources", operations={"get": op(
        "Rate sources with their values, ages and errors", errors=(), secured=True, tag="admin")})
    spec.path("/api/v1/admin/rates/manual/{source}/{symbol}", operations={"put": op(
        "Set a value of the manual source (operator; step-up; audited and alerted)", "RateManualValue",
        errors=("400", "404", "422"), secured=True, tag="admin", params=[
            {"name": "source", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "symbol", "in": "path", "required": True, "schema": {"type": "string"}}])})
    spec.path("/api/v1/admin/rates/formulas", operations={"get": op(
        "Every direction's formula with the engine's last verdict", errors=(), secured=True, tag="admin")})
    spec.path("/api/v1/admin/rates/formulas/{direction_id}", operations={
        "get": op("A direction's formula, its history and its rate history", errors=(), secured=True,
                  tag="admin", params=[did]),
        "put": op("Save a direction's formula (admin; step-up; checked, its history kept, alerted)",
                  "RateFormulaInput", errors=("400", "404", "409", "422"), secured=True, tag="admin", params=[did]),
        "delete": op("Remove a direction's formula: its rate is set by hand again (admin; step-up; alerted)",
                     errors=("404",), secured=True, tag="admin", params=[did])})
    spec.path("/api/v1/admin/rates/formulas/{direction_id}/preview", operations={"post": op(
        "The rate a formula would give now, and whether a guard would freeze it", "RateFormulaInput",
        ("200", "RatePreview"), ("400", "404", "422"), secured=True, tag="admin", params=[did])})
    spec.path("/api/v1/admin/rates/formulas/{direction_id}/accept", operations={"post": op(
        "Accept the computed value a jump or spread guard froze on (operator; step-up; audited and alerted)",
        errors=("404",), secured=True, tag="admin", params=[did])})
