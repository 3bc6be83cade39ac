"""The demo's "customer bank": pick a wallet, send money to the exchanger with the order's reference, see the
result and the wallet's recent history. Server-rendered; the form is a classic POST with a CSRF token and an
idempotency key, so a double click or a browser retry never pays twice."""
import datetime
import hmac
import secrets
import uuid

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from marshmallow import ValidationError

from libs import money
from sandbox import domain, schemas, storage
from sandbox.database import transact

bp = Blueprint("sandbox_web", __name__)

CSRF_COOKIE = "sandbox_csrf"
EXCHANGER_OWNER = "exchanger"
MAX_WALLETS = 500
HISTORY_ROWS = 20


@bp.app_template_filter("amount")
def amount_filter(value, precision=domain.DEFAULT_PRECISION):
    """Fixed-point display of money at the currency's precision, thousands grouped by a thin space."""
    if value is None:
        return ""
    text = format(money.round_down(value, precision), ",f")
    return text.replace(",", "\u202f")


@bp.app_template_filter("utc")
def utc_filter(value, fmt="%Y-%m-%d %H:%M"):
    """A timestamptz (in whatever the session's time zone is) as UTC text."""
    if value is None:
        return ""
    return value.astimezone(datetime.timezone.utc).strftime(fmt) + " UTC"


def _csrf_token():
    token = request.cookies.get(CSRF_COOKIE)
    if token and 20 <= len(token) <= 100:
        return token, False
    return secrets.token_urlsafe(32), True


def _csrf_ok():
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    sent = request.form.get("csrf_token") or ""
    return bool(cookie) and hmac.compare_digest(cookie.encode(), sent.encode())


def _parse_uuid(value):
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def _page(wallet=None, form=None, sent=None, error=None, status=200, currency=None):
    form = form or {}

    def load(cur):
        # A link that names the currency to pay (the exchanger's order page) lists the wallets of that currency,
        # the first one chosen, so the customer pays in the right money.
        wallets = storage.list_accounts(cur, exclude_owner=EXCHANGER_OWNER, limit=MAX_WALLETS,
                                        **({"currency": currency} if currency and not wallet else {}))
        if not wallets and currency:
            wallets = storage.list_accounts(cur, exclude_owner=EXCHANGER_OWNER, limit=MAX_WALLETS)
        selected = storage.get_account(cur, wallet) if wallet else None
        if selected is None and wallets:
            selected = wallets[0]
        payees = storage.list_accounts(cur, owner=EXCHANGER_OWNER, currency=selected["currency"]) \
            if selected else []
        history = storage.recent_history(cur, selected["account"], HISTORY_ROWS) if selected else []
        transfer = storage.get_transfer(cur, sent) if sent else None
        if transfer is not None and selected is not None \
                and selected["account"] not in (transfer["from_account"], transfer["to_account"]):
            transfer = None
        return wallets, selected, payees, history, transfer

    wallets, selected, payees, history, transfer = transact(load)
    if selected is not None and all(w["account"] != selected["account"] for w in wallets):
        wallets = [selected] + list(wallets)
    token, new_token = _csrf_token()
    html = render_template(
        "index.html", wallets=wallets, selected=selected, payees=payees, history=history, transfer=transfer,
        error=error, form=form, csrf_token=token, idempotency_key="web-" + uuid.uuid4().hex)
    response = make_response(html, status)
    if new_token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/")
def index():
    # to / amount / reference may be prefilled by a link, e.g. from the exchanger's "how to pay" page.
    form = {key: request.args.get(key, "")[:200] for key in ("to_account", "amount", "reference")}
    return _page(wallet=request.args.get("wallet"), form=form, sent=_parse_uuid(request.args.get("sent")),
                 currency=(request.args.get("currency") or "")[:16] or None)


def _messages(errors):
    """marshmallow's {field: [messages]} as short human lines."""
    lines = []
    for field, messages in sorted(errors.items()):
        if isinstance(messages, dict):
            messages = [str(m) for m in messages.values()]
        lines.append("%s: %s" % (field.replace("_", " "), "; ".join(str(m) for m in messages)))
    return lines


@bp.post("/send")
def send():
    form = {key: (request.form.get(key) or "").strip()
            for key in ("from_account", "to_account", "amount", "reference", "idempotency_key")}
    wallet = form["from_account"] or None
    if not _csrf_ok():
        return _page(wallet, form, error={"message": "The form expired. Please try again.", "details": []},
                     status=400)
    # People type "10,50"; the API itself only takes a dot.
    amount = form["amount"].replace(",", ".").replace(" ", "").replace("\u202f", "")
    try:
        source = transact(lambda cur: storage.get_account(cur, form["from_account"])) if wallet else None
        if source is None:
            raise domain.NotFound("Pick a wallet to pay from.")
        data = schemas.TransferCreateSchema().load({
            "from_account": form["from_account"], "to_account": form["to_account"], "amount": amount,
            "currency": source["currency"], "reference": form["reference"],
            "idempotency_key": form["idempotency_key"] or None})
        transfer, _ = transact(lambda cur: storage.make_transfer(cur, **data))
    except ValidationError as exc:
        return _page(wallet, form, error={"message": "Please check the form.",
                                          "details": _messages(exc.normalized_messages())}, status=400)
    except domain.SandboxError as exc:
        return _page(wallet, form, error={"message": exc.message, "details": _messages(exc.fields)},
                     status=exc.status)
    return redirect(url_for("sandbox_web.index", wallet=transfer["from_account"], sent=str(transfer["id"])), 303)


def render_error(exc):
    return make_response(render_template("error.html", error=exc), exc.status)
