"""The JSON API a payment system client sees: accounts, transfers, history, and fault switches for tests."""
import time

from flask import Blueprint, jsonify, request
from marshmallow import ValidationError

from sandbox import domain, schemas, storage
from sandbox.database import transact

bp = Blueprint("sandbox_api", __name__, url_prefix="/api")


def _json_body():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise domain.InvalidRequest("the body must be a JSON object")
    return body


def _query(schema):
    return schema.load(request.args.to_dict())


# --- faults -------------------------------------------------------------------------------------------------

def _take_fault(operation, accounts=()):
    return transact(lambda cur: storage.take_fault(cur, operation, accounts))


def _fault_response(fault):
    """The answer an armed fault gives instead of the real one."""
    mode = fault["mode"]
    if mode == "timeout":
        # Not money: seconds to hold the connection before a gateway-timeout answer.
        time.sleep(float(fault["delay_s"]))
        body = {"error": "timeout", "message": "the payment system did not answer in time"}
    elif mode == "refuse":
        body = {"error": "refused", "message": "the payment system declined the operation"}
    else:
        body = {"error": "internal_error", "message": "injected failure"}
    body["fault_id"] = fault["id"]
    return jsonify(body), domain.fault_statuses()[mode]


def _with_fault(operation, accounts, handler):
    """Run handler() unless a pending fault says otherwise.

    apply=before: the fault answers and nothing is executed. apply=after: the handler runs (for a transfer, the
    money moves and commits), then the fault answers anyway, as when a provider's reply is lost on the way back.
    """
    fault = _take_fault(operation, accounts)
    if fault is not None and fault["apply"] == "before":
        return _fault_response(fault)
    try:
        result = handler()
    except (domain.SandboxError, ValidationError):
        if fault is not None:
            return _fault_response(fault)
        raise
    if fault is not None:
        return _fault_response(fault)
    return result


@bp.post("/faults")
def create_fault():
    data = schemas.FaultCreateSchema().load(_json_body())
    row = transact(lambda cur: storage.add_fault(cur, **data))
    return jsonify(schemas.fault_to_wire(row)), 201


@bp.get("/faults")
def list_faults():
    include_spent = request.args.get("all") in ("1", "true", "yes")
    rows = transact(lambda cur: storage.list_faults(cur, include_spent=include_spent))
    return jsonify({"items": [schemas.fault_to_wire(r) for r in rows]})


@bp.delete("/faults")
def clear_faults():
    query = _query(schemas.FaultDeleteQuerySchema())
    deleted = transact(lambda cur: storage.clear_faults(cur, account=query["account"]))
    return jsonify({"deleted": deleted})


@bp.delete("/faults/<int:fault_id>")
def delete_fault(fault_id):
    deleted = transact(lambda cur: storage.clear_faults(cur, fault_id=fault_id))
    if not deleted:
        raise domain.NotFound("unknown fault %d" % fault_id)
    return jsonify({"deleted": deleted})


# --- accounts -----------------------------------------------------------------------------------------------

@bp.post("/accounts")
def create_account():
    data = schemas.AccountCreateSchema().load(_json_body())
    row = transact(lambda cur: storage.create_account(cur, **data))
    return jsonify(schemas.account_to_wire(row)), 201


@bp.get("/accounts")
def list_accounts():
    query = _query(schemas.AccountListQuerySchema())
    rows = transact(lambda cur: storage.list_accounts(cur, **query))
    return jsonify({"items": [schemas.account_to_wire(r) for r in rows]})


@bp.get("/accounts/<account>")
def get_account(account):
    def handler():
        row = transact(lambda cur: storage.require_account(cur, account))
        return jsonify(schemas.account_to_wire(row))
    return _with_fault("balance", [account], handler)


@bp.get("/accounts/<account>/history")
def account_history(account):
    def handler():
        query = _query(schemas.HistoryQuerySchema())

        def read(cur):
            storage.require_account(cur, account)
            return storage.history(cur, account, after=query["after"], limit=query["limit"])
        rows = transact(read)
        items = [schemas.entry_to_wire(r) for r in rows]
        next_cursor = items[-1]["cursor"] if items else query["after"]
        return jsonify({"items": items, "next_cursor": next_cursor, "has_more": len(items) == query["limit"]})
    return _with_fault("history", [account], handler)


# --- transfers ----------------------------------------------------------------------------------------------

def _idempotency_key(body_key):
    header_key = request.headers.get("Idempotency-Key")
    if header_key is not None:
        if not domain.IDEMPOTENCY_KEY_RE.match(header_key):
            raise domain.InvalidRequest("bad Idempotency-Key header",
                                        {"idempotency_key": ["1-255 printable ASCII characters, no spaces"]})
        if body_key is not None and body_key != header_key:
            raise domain.InvalidRequest("the Idempotency-Key header and the body's idempotency_key differ",
                                        {"idempotency_key": ["differs from the header"]})
        return header_key
    return body_key


@bp.post("/transfers")
def create_transfer():
    body = _json_body()

    def handler():
        data = schemas.TransferCreateSchema().load(body)
        key = _idempotency_key(data.pop("idempotency_key"))
        row, created = transact(lambda cur: storage.make_transfer(cur, idempotency_key=key, **data))
        response = jsonify(schemas.transfer_to_wire(row))
        if not created:
            response.headers["Idempotent-Replayed"] = "true"
        return response, 201 if created else 200
    return _with_fault("transfer", [body.get("from_account"), body.get("to_account")], handler)


@bp.get("/transfers")
def lookup_transfers():
    """Look a transfer up by its idempotency key: {items: []} or {items: [transfer]}."""
    query = _query(schemas.TransferLookupQuerySchema())
    row = transact(lambda cur: storage.find_transfer_by_key(cur, query["idempotency_key"]))
    accounts = [] if row is None else [row["from_account"], row["to_account"]]
    return _with_fault("lookup", accounts, lambda: jsonify(
        {"items": [schemas.transfer_to_wire(row)] if row is not None else []}))


@bp.get("/transfers/<uuid:transfer_id>")
def get_transfer(transfer_id):
    row = transact(lambda cur: storage.get_transfer(cur, transfer_id))
    if row is None:
        raise domain.NotFound("unknown transfer %s" % transfer_id)
    return jsonify(schemas.transfer_to_wire(row))
