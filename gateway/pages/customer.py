"""Customer pages: the exchange form (live quote in the browser, checked again by the orders service) and the order
page at its unguessable token URL (payment instructions, countdown, a timeline that refreshes itself)."""
from decimal import Decimal
from urllib.parse import urlencode

import segno

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from gateway.api.public import CHAIN_SYSTEMS
from gateway import rpc
from gateway.pages import internal
from gateway.pages.cabinet import current_account
from libs import money
from libs.errors import ExchangerError
from libs.rpc_client import RpcError
from libs.contracts.orders import STATUSES, available_actions, for_customer
from gateway.pages.i18n import (QUOTE_TEXTS, TEXTS, current_language, event_key, field_message, field_messages,
                                payment_system_name, translator)

bp = Blueprint("customer", __name__)

FORM_FIELDS = ("direction_id", "amount_in", "email", "recipient", "phone", "partner_code")


def normalise_amount(text):
    """What the customer typed as the amount, as the API takes it: spaces (thousands, also no-break) dropped and
    one decimal comma read as a point. exchange.js does exactly the same before it quotes, so an amount the live
    quote accepted is the one the server checks, and one it refused is refused here with the same message."""
    return "".join(text.split()).replace(",", ".", 1) if text.count(",") <= 1 else text


def _directions():
    result = internal.call("GET", "/api/v1/directions")
    return (result.data or []) if result.ok else None


@bp.get("/")
def exchange_form():
    ref = request.args.get("ref", "")[:32]
    if ref:
        session["ref"] = ref  # the partner of a ?ref= link keeps the credit while the visitor looks around
    form = {"partner_code": session.get("ref", ""), "direction_id": request.args.get("direction", "")}
    account = _signed_in_account()
    if account:
        form["email"] = account.get("email") or ""
    return _render_form(form, {})


def _partner_exists(code):
    """Whether a partner code typed in the form is a partner's (an unknown one is said so instead of being dropped
    silently). When the orders service cannot tell, the code goes on and the service decides."""
    try:
        found = rpc.service("orders").list_partners({"code": code, "limit": 1})
    except (RpcError, ExchangerError):
        return True
    return any(p.get("active", True) for p in found.get("items") or [])


def _sms_offer():
    """The completion SMS the form may offer: only when SMS is on (None when the orders service cannot tell)."""
    try:
        offer = rpc.service("orders").sms_offer()
    except (RpcError, ExchangerError):
        return None
    return offer if offer.get("available") else None


def _signed_in_account():
    """The cabinet's account, if the visitor is signed in (their e-mail fills the form); none if orders is down."""
    try:
        return current_account()
    except Exception:  # noqa: BLE001 - the form works without the cabinet
        return None


def _render_form(form, errors, status=200, message=None):
    directions = _directions()
    lang = current_language()
    t = translator(lang)
    return render_template("exchange.html", directions=directions or [], form=form, errors=errors,
                           texts={key: t(key) for key in QUOTE_TEXTS}, sms_offer=_sms_offer(),
                           unavailable=directions is None, message=message,
                           lang_switch=url_for("customer.exchange_form", lang="ru" if lang == "en" else "en")), status


@bp.post("/exchange")
def create_order():
    form = {k: (request.form.get(k) or "").strip() for k in FORM_FIELDS}
    form["sms_opt_in"] = request.form.get("sms_opt_in") == "on"
    t = translator(current_language())
    body = {"amount_in": normalise_amount(form["amount_in"]), "email": form["email"],
            "recipient": form["recipient"], "sms_opt_in": form["sms_opt_in"], "language": current_language()}
    errors = {}
    try:
        body["direction_id"] = int(form["direction_id"])
    except ValueError:
        errors["direction_id"] = [t("direction")]
    if form["phone"]:
        body["phone"] = form["phone"].replace(" ", "").replace("-", "")
    if form["partner_code"]:
        body["partner_code"] = form["partner_code"]
        if not _partner_exists(form["partner_code"]):
            errors["partner_code"] = [t("partner_unknown")]
    # A form shown again with its errors answers 200: it is a page to correct, not a failed resource.
    if errors:
        return _render_form(form, errors, 200, t("form_errors"))
    result = internal.call("POST", "/api/v1/orders", body=body)
    if result.status == 201:
        return redirect(url_for("customer.order_page", token=result.data["token"]), 303)
    if not result.available:
        return _render_form(form, {}, 503, t("unavailable"))
    if result.status == 429:  # the order throttles (gateway/security/ratelimits.py): say when to come back
        page, status = _render_form(form, {}, 429, t("too_many_orders"))
        return page, status, {"Retry-After": result.response.headers.get("Retry-After", "60")}
    lang = current_language()
    return _render_form(form, field_messages(result.fields, lang), 200,
                        t("form_errors") if result.fields else field_message(result.message, lang, t("error")))


def _order_or_404(token):
    result = internal.call("GET", "/api/v1/orders/%s" % token)
    return result


@bp.get("/orders/<token>")
def order_page(token):
    result = _order_or_404(token)
    t = translator(current_language())
    if result.status == 404:
        return render_template("error.html", code=404, message=t("not_found")), 404
    if not result.ok:
        return render_template("error.html", code=503, message=t("unavailable")), 503
    return _render_order(result.data)


def _render_order(order, message=None, status=200):
    lang = current_language()
    t = translator(lang)
    order = for_customer(order)
    order["customer_actions"] = available_actions(order["status"], order["exchange_type"], "customer")
    pay_to = order["pay_to"]
    sandbox = None
    if pay_to["system"] == "sandbox" and order["status"] == "new":
        # the demo bank opens on a wallet of the currency to pay, with account, amount and reference filled in
        sandbox = "%s/?%s" % (current_app.config["SANDBOX_PUBLIC_URL"].rstrip("/"), urlencode({
            "currency": pay_to["currency"], "to_account": pay_to["account"], "amount": pay_to["amount"],
            "reference": pay_to["reference"]}))
    deposit = None
    if pay_to["system"] in CHAIN_SYSTEMS:
        # A chain order: its own address (no reference to type) and the confirmations of what arrived on it.
        found = internal.call("GET", "/api/v1/orders/%s/deposit" % order["token"])
        deposit = found.data if found.ok else {"unavailable": True}
    # A QR code where the payment system has a URI for the payment (the rail's own, else the demo bank's link).
    uri = pay_to.get("uri") or sandbox
    qr = segno.make(uri, error="m").svg_inline(scale=3, dark="#111", light="#fff") \
        if uri and order["status"] == "new" else None
    timeline = [dict(h, text=t(event_key(h, order))) for h in order.get("history") or []]
    mismatch = _mismatch(order)
    event_texts = {k: t(k) for k in TEXTS if k.startswith(("ev_", "st_"))}
    return render_template("order.html", order=order, sandbox_url=sandbox, message=message, qr=qr, deposit=deposit,
                           pay_system=payment_system_name(pay_to["system"], lang), timeline=timeline,
                           mismatch=mismatch, status_texts={s: t("st_" + s) for s in STATUSES},
                           page_texts={"events": event_texts, "copied": t("copied"), "lang": lang},
                           lang_switch=url_for("customer.order_page", token=order["token"],
                                               lang="ru" if lang == "en" else "en")), status


def _mismatch(order):
    """A payment that did not fit the request: what arrived, what was asked, the difference, and what happens."""
    flag, received = order.get("payment_flag"), order.get("amount_received")
    if not flag or received is None or order["status"] in ("completed", "canceled"):
        return None
    got, asked = Decimal(received), Decimal(order["amount_in"])
    return {"flag": flag, "received": money.to_str(got), "expected": money.to_str(asked),
            "missing": money.to_str(asked - got) if got < asked else None,
            "over": money.to_str(got - asked) if got > asked else None}


def _customer_action(token, action):
    t = translator(current_language())
    result = internal.call("POST", "/api/v1/orders/%s/%s" % (token, action), body={})
    if result.ok:
        return redirect(url_for("customer.order_page", token=token), 303)
    if result.status == 404:
        return render_template("error.html", code=404, message=t("not_found")), 404
    current = _order_or_404(token)
    if not current.ok:
        return render_template("error.html", code=503, message=t("unavailable")), 503
    return _render_order(current.data, t("conflict") if result.status == 409 else result.message)


@bp.post("/orders/<token>/paid")
def claim_paid(token):
    return _customer_action(token, "paid")


@bp.post("/orders/<token>/cancel")
def cancel(token):
    return _customer_action(token, "cancel")
