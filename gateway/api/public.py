"""Customer API: directions, create an order, follow it by its token, say "I have paid", cancel."""
import hashlib
import secrets

from flask import Blueprint, jsonify, request, session

from gateway import metrics, rpc
from gateway.api import load_body
from gateway.api.account import current_account
from gateway.api.partner import referral_from_cookie
from gateway.errors import ApiError
from gateway.schemas import EmptySchema
from gateway.security.caller import client_ip
from gateway.security.ratelimits import order_limits
from libs.contracts.orders import OrderCreateSchema, for_customer

bp = Blueprint("public_api", __name__, url_prefix="/api/v1")

TOKEN_MAX = 64


def _check_token(token):
    if not (8 <= len(token) <= TOKEN_MAX) or not all(c.isalnum() or c in "-_" for c in token):
        raise ApiError(404, "not_found", "order not found")


def idempotency_scope():
    """Whose an `Idempotency-Key` is (docs/architecture.md, "Idempotency keys"): the signed-in customer account,
    else the bearer token (only its hash leaves the gateway), else the visitor's session, which is started here if
    there is none (the signed session cookie then carries a random client id, so the retry finds its order)."""
    account = current_account()
    if account is not None:
        return "account:%s" % account["id"]
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.startswith("Bearer ") else ""
    if token:
        return "bearer:" + hashlib.sha256(token.encode()).hexdigest()
    client = session.get("client")
    if not isinstance(client, str) or not client:
        client = session["client"] = secrets.token_urlsafe(24)
    return "session:" + hashlib.sha256(client.encode()).hexdigest()


@bp.get("/directions")
def list_directions():
    directions = rpc.service("orders").list_directions()
    return jsonify(directions)


@bp.post("/orders")
@order_limits
def create_order():
    data = load_body(OrderCreateSchema)
    if not data.get("partner_code"):
        # A visitor who came by a partner's link (/?ref=CODE, kept 30 days in a cookie): the partner earns
        # (docs/partners.md).
        data["partner_code"] = referral_from_cookie()
    # The client's Idempotency-Key (or none) makes a retried POST return the same order, not a second one. The key
    # is the caller's own (account, bearer token or session) and bound to the body: another body is a 409
    # (docs/architecture.md, "Idempotency keys").
    key = request.headers.get("Idempotency-Key")
    if key:
        if len(key) > 100:
            raise ApiError(422, "validation_failed", "invalid input", {"Idempotency-Key": ["at most 100 chars"]})
        data["request_id"] = key
        data["request_scope"] = idempotency_scope()
    order = rpc.service("orders").create_order(data, {"ip": client_ip()})
    response = jsonify({k: v for k, v in order.items() if k != "idempotent_replay"})
    if order.get("idempotent_replay"):
        # The same answer as the first time (201), which created the order; this one wrote nothing.
        response.headers["Idempotent-Replayed"] = "true"
        metrics.IDEMPOTENT_REPLAYS.labels("/api/v1/orders").inc()
    return response, 201


@bp.get("/orders/<token>")
def get_order(token):
    _check_token(token)
    return jsonify(for_customer(rpc.service("orders").get_order_by_token(token)))


CHAIN_SYSTEMS = ("litecoin", "evm")


def order_deposit(order):
    """The chain deposit of an order paid in a chain currency (docs/chains.md): its own address and the transfers
    seen on it with their confirmations; None for other orders."""
    if order["pay_to"]["system"] not in CHAIN_SYSTEMS:
        return None
    return rpc.service("payments").order_deposit(order["id"], order["reference"], order["pay_to"]["system"])


@bp.get("/orders/<token>/deposit")
def get_order_deposit(token):
    _check_token(token)
    deposit = order_deposit(rpc.service("orders").get_order_by_token(token))
    if deposit is None:
        raise ApiError(404, "not_found", "this order is not paid on a chain")
    return jsonify(deposit)


@bp.post("/orders/<token>/paid")
def claim_paid(token):
    _check_token(token)
    load_body(EmptySchema)
    return jsonify(for_customer(rpc.service("orders").claim_paid(token, {"ip": client_ip()})))


@bp.post("/orders/<token>/cancel")
def cancel(token):
    _check_token(token)
    load_body(EmptySchema)
    return jsonify(for_customer(rpc.service("orders").cancel_by_customer(token, {"ip": client_ip()})))
