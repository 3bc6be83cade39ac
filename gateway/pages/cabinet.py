"""The customer's cabinet (docs/partners.md): sign-up, e-mail confirmation, sign-in, password reset, and the
cabinet itself with the account's exchanges, its inbox of private messages and the partner section (referral link,
balance, stats, withdrawals). Also the referral link: `/?ref=CODE` counts a click and keeps the code 30 days.

Follows the pages' conventions (gateway/pages, gateway/security): server-rendered forms with the CSRF token,
no inline script; state changes only by POST. The cabinet session is a random cookie whose SHA-256 the orders
service keeps (kind 'web'); idle and absolute timeouts; a new session id at every sign-in.
"""
import functools
import uuid
from urllib.parse import urlsplit

import segno

from flask import (Blueprint, current_app, flash, g, get_flashed_messages, redirect, render_template, request,
                   session, url_for)

from gateway import rpc
from gateway.api import account as account_api
from gateway.api.partner import REF_COOKIE, REF_COOKIE_DAYS, referral_link
from gateway.pages.i18n import current_language, field_message, field_messages, translator
from libs import config
from libs.rpc_client import RpcError
from libs import errors
from libs.contracts.orders import STATUSES, normalise_partner_code as normalise_code

bp = Blueprint("cabinet", __name__, url_prefix="/account")

TEXTS = {
    "cabinet": ("My account", "Личный кабинет"),
    "sign_in": ("Sign in", "Войти"),
    "sign_up": ("Sign up", "Регистрация"),
    "sign_out": ("Sign out", "Выйти"),
    "password": ("Password", "Пароль"),
    "password_hint": ("At least 10 characters.", "Не короче 10 символов."),
    "new_password": ("New password", "Новый пароль"),
    "create_account": ("Create account", "Зарегистрироваться"),
    "have_account": ("Already have an account?", "Уже есть учётная запись?"),
    "no_account": ("No account yet?", "Ещё нет учётной записи?"),
    "forgot": ("Forgot your password?", "Забыли пароль?"),
    "check_mail": ("Check your mail", "Проверьте почту"),
    "signup_sent": ("If this address can be used, we have sent a letter with a confirmation link to it. Open the "
                    "link to finish the sign-up.",
                    "Если этот адрес можно использовать, мы отправили на него письмо со ссылкой для подтверждения. "
                    "Откройте ссылку, чтобы завершить регистрацию."),
    "reset_sent": ("If an account uses this address, we have sent a letter with a link to choose a new password.",
                   "Если этот адрес принадлежит учётной записи, мы отправили письмо со ссылкой для смены пароля."),
    "confirm_title": ("Confirm your e-mail", "Подтверждение e-mail"),
    "confirm_button": ("Confirm my e-mail", "Подтвердить e-mail"),
    "confirmed": ("Your e-mail is confirmed. Sign in with the password you chose.",
                  "E-mail подтверждён. Войдите с выбранным паролем."),
    "confirm_password_hint": ("The password you chose when you signed up: only the person who signed up can "
                              "confirm.",
                              "Пароль, выбранный при регистрации: подтвердить может только тот, кто "
                              "регистрировался."),
    "wrong_signup_password": ("This is not the password chosen at this sign-up.",
                              "Это не тот пароль, что был выбран при регистрации."),
    "code": ("Code from the app", "Код из приложения"),
    "code_needed": ("Two-factor codes are on for this account: enter your password and the code from the app.",
                    "Для этой учётной записи включены коды подтверждения: введите пароль и код из приложения."),
    "throttled": ("Too many failed attempts for this e-mail from your address. Try again in %s s.",
                  "Слишком много неудачных попыток для этого e-mail с вашего адреса. Повторите через %s с."),
    "security": ("Security", "Безопасность"),
    "change_password": ("Change the password", "Сменить пароль"),
    "current_password": ("Current password", "Текущий пароль"),
    "password_changed": ("Your password is changed; every other session has ended.",
                         "Пароль изменён; все прочие сеансы завершены."),
    "totp": ("Two-factor codes", "Коды подтверждения (2FA)"),
    "totp_on": ("On: signing in asks for a code from your authenticator app.",
                "Включены: при входе запрашивается код из приложения-аутентификатора."),
    "totp_off": ("Off. Turn them on so that a stolen password alone does not open your account.",
                 "Выключены. Включите их, чтобы одного украденного пароля не хватало для входа."),
    "totp_start": ("Turn on two-factor codes", "Включить коды подтверждения"),
    "totp_scan": ("Scan this code with an authenticator app (or type the secret), then enter the code it shows.",
                  "Отсканируйте код приложением-аутентификатором (или введите секрет) и введите показанный код."),
    "totp_confirm": ("Turn on", "Включить"),
    "totp_enabled": ("Two-factor codes are on.", "Коды подтверждения включены."),
    "totp_disable": ("Turn off", "Выключить"),
    "totp_disabled": ("Two-factor codes are off.", "Коды подтверждения выключены."),
    "destination_title": ("Confirm a withdrawal account", "Подтверждение счёта для вывода"),
    "destination_button": ("Confirm this account for my withdrawals", "Подтвердить этот счёт для выводов"),
    "destination_done": ("The account is confirmed: withdrawals to it can now be paid.",
                         "Счёт подтверждён: выводы на него теперь могут быть выплачены."),
    "w_unconfirmed": ("waiting for your confirmation (see our letter)", "ждёт вашего подтверждения (см. письмо)"),
    "withdrawal_confirm_mail": ("Withdrawal requested. This account is new: confirm it with the link we have sent "
                                "to your e-mail; we pay nothing to it before.",
                                "Вывод заказан. Этот счёт новый: подтвердите его по ссылке из нашего письма; до "
                                "этого мы ничего на него не выплатим."),
    "bad_link": ("This link is invalid or has expired. Ask for a new letter.",
                 "Ссылка недействительна или устарела. Запросите новое письмо."),
    "reset_title": ("Reset the password", "Сброс пароля"),
    "reset_request": ("Send me a reset link", "Прислать ссылку для сброса"),
    "reset_button": ("Set the new password", "Сохранить новый пароль"),
    "reset_done": ("Your password is changed; every other session has ended. Sign in with the new one.",
                   "Пароль изменён, все прочие сеансы завершены. Войдите с новым паролем."),
    "wrong_credentials": ("Wrong e-mail or password.", "Неверный e-mail или пароль."),
    "unconfirmed": ("Confirm your e-mail first: open the link in our letter.",
                    "Сначала подтвердите e-mail: откройте ссылку из нашего письма."),
    "signed_in_as": ("Signed in as", "Вы вошли как"),
    "exchanges": ("My exchanges", "Мои обмены"),
    "no_exchanges": ("No exchanges with this e-mail yet.", "С этим e-mail ещё не было обменов."),
    "new_exchange": ("New exchange", "Новый обмен"),
    "open": ("Open", "Открыть"),
    "date": ("Date", "Дата"),
    "inbox": ("Messages", "Сообщения"),
    "no_messages": ("No messages.", "Сообщений нет."),
    "mark_read": ("Mark all read", "Отметить все прочитанными"),
    "unread": ("new", "новое"),
    "partner_program": ("Partner program", "Партнёрская программа"),
    "partner_pitch": ("Invite customers with your link and earn a share of the exchanger's margin on each of their "
                      "completed exchanges.",
                      "Приглашайте клиентов по своей ссылке и получайте долю прибыли обменника с каждого их "
                      "завершённого обмена."),
    "become_partner": ("Become a partner", "Стать партнёром"),
    "your_link": ("Your referral link", "Ваша партнёрская ссылка"),
    "copy": ("Copy", "Копировать"),
    "copied": ("Copied", "Скопировано"),
    "code": ("Code", "Код"),
    "balance": ("Balance", "Баланс"),
    "earned": ("Earned", "Заработано"),
    "pending": ("In withdrawal", "На выводе"),
    "no_balance": ("No commission yet.", "Вознаграждений пока нет."),
    "clicks": ("Clicks", "Переходы"),
    "referred": ("Referred exchanges", "Привлечённые обмены"),
    "commission": ("Commission", "Вознаграждение"),
    "earnings_by_day": ("Earnings by day", "Доход по дням"),
    "withdrawals": ("Withdrawals", "Выводы"),
    "withdraw": ("Request a withdrawal", "Заказать вывод"),
    "amount": ("Amount", "Сумма"),
    "currency": ("Currency", "Валюта"),
    "to_account": ("Your account to be paid", "Ваш счёт для выплаты"),
    "minimum": ("Minimum", "Минимум"),
    "withdrawal_sent": ("Withdrawal requested: an operator will pay it.", "Вывод заказан: оператор его выплатит."),
    "w_requested": ("requested", "заказан"),
    "w_approved": ("approved, being paid", "одобрен, выплачивается"),
    "w_paid": ("paid", "выплачен"),
    "w_failed": ("payout failed, an operator is on it", "выплата не прошла, оператор разбирается"),
    "w_rejected": ("rejected", "отклонён"),
    "reason": ("Reason", "Причина"),
    "not_saved": ("Not saved", "Не сохранено"),
    "new_link": ("Send me a new link", "Прислать новую ссылку"),
    "new_link_hint": ("Already confirmed? Just sign in. Otherwise sign up again with the same e-mail: we send a new "
                      "link.",
                      "Уже подтвердили? Просто войдите. Иначе зарегистрируйтесь ещё раз с тем же e-mail: мы пришлём "
                      "новую ссылку."),
    "withdrawal_not_saved": ("{currency} withdrawal not requested", "Вывод {currency} не заказан"),
    "join_done": ("You are a partner now: share your link.", "Теперь вы партнёр: делитесь ссылкой."),
}


def texts(lang):
    index = 1 if lang == "ru" else 0
    base = translator(lang)

    def tc(key):
        pair = TEXTS.get(key)
        return pair[index] if pair else base(key)
    return tc


def _orders():
    return rpc.service("orders")


# -- the cabinet session ---------------------------------------------------------------------------------------
def cookie_name():
    return "__Host-exchanger_account" if current_app.config["COOKIE_SECURE"] else "exchanger_account"


def _session_seconds():
    return config.env_float("ACCOUNT_SESSION_HOURS", 12.0) * 3600


def _idle_seconds():
    return config.env_float("ACCOUNT_SESSION_IDLE_MINUTES", 60.0) * 60


def current_account():
    if "cabinet_account" not in g:
        raw = request.cookies.get(cookie_name(), "")
        g.cabinet_account = _orders().account_for_session(account_api.hash_token(raw), _idle_seconds()) \
            if raw and len(raw) < 100 else None
    return g.cabinet_account


def _set_cookie(response, raw):
    response.set_cookie(cookie_name(), raw, httponly=True, secure=current_app.config["COOKIE_SECURE"],
                        samesite="Lax", path="/", max_age=int(_session_seconds()))
    return response


def _safe_next(target):
    if not target:
        return url_for("cabinet.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/account") or target.startswith("//"):
        return url_for("cabinet.home")
    return target


def account_page(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current_account() is None:
            return redirect(url_for("cabinet.signin", next=request.path if request.method == "GET" else None))
        return view(*args, **kwargs)
    return wrapper


def _render(template, status=200, **context):
    lang = current_language()
    other = "ru" if lang == "en" else "en"
    args = dict(request.view_args or {})
    args.update({k: v for k, v in request.args.items() if k == "token"})
    return render_template(template, tc=texts(lang), lang_switch=url_for(request.endpoint, lang=other, **args),
                           flashes=get_flashed_messages(with_categories=True), **context), status


FIELD_LABELS = {"amount": "amount", "currency": "currency", "to_account": "to_account", "email": "email",
                "password": "password"}


def _fields_message(exc):
    """A refused call's fields in the page's language, each named by its form label (never a raw key)."""
    lang = current_language()
    tc = texts(lang)
    fields = field_messages(getattr(exc, "fields", None) or {}, lang)
    return "; ".join("%s: %s" % (tc(FIELD_LABELS[k]) if k in FIELD_LABELS else tc("not_saved"), " ".join(v))
                     for k, v in fields.items()) \
        or field_message(getattr(exc, "message", None) or str(exc), lang)


# -- the referral link -----------------------------------------------------------------------------------------
@bp.before_app_request
def _referral():
    """`/?ref=CODE`: count a click and keep the code 30 days (once per visitor and code while the cookie lasts).
    A returning visitor's form is filled from the cookie (the exchange form reads session['ref'])."""
    if request.method != "GET" or request.path != "/":
        return
    code = normalise_code(request.args.get("ref"))
    if code:
        if request.cookies.get(REF_COOKIE) != code:
            try:
                if _orders().count_partner_click(code):
                    g.referral_cookie = code
            except (RpcError, errors.ExchangerError) as exc:  # the page works without the partner program
                current_app.logger.warning("referral click for %s not counted: %s", code, exc)
    elif not session.get("ref"):
        remembered = normalise_code(request.cookies.get(REF_COOKIE))
        if remembered:
            session["ref"] = remembered


@bp.after_app_request
def _referral_cookie(response):
    code = g.pop("referral_cookie", None)
    if code:
        response.set_cookie(REF_COOKIE, code, max_age=REF_COOKIE_DAYS * 86400, httponly=True, samesite="Lax",
                            secure=current_app.config["COOKIE_SECURE"], path="/")
    return response


# -- sign-up and confirmation ----------------------------------------------------------------------------------
@bp.get("/signup")
def signup():
    return _render("cabinet/signup.html", form={}, errors={})


@bp.post("/signup")
@account_api.account_limits
@account_api.account_letter_limits
def signup_post():
    tc = texts(current_language())
    form = {"email": (request.form.get("email") or "").strip()}
    password = request.form.get("password") or ""
    try:
        account_api.signup(form["email"], password, current_language())
    except errors.ValidationFailed as exc:
        return _render("cabinet/signup.html", form=form, errors=field_messages(exc.fields, current_language()),
                       message=tc("form_errors"))
    return _render("cabinet/notice.html", title=tc("check_mail"), text=tc("signup_sent"))


@bp.get("/confirm")
def confirm():
    token = request.args.get("token", "")[:100]
    return _render("cabinet/confirm.html", token=token)


@bp.post("/confirm")
@account_api.account_limits
def confirm_post():
    tc = texts(current_language())
    token = (request.form.get("token") or "")[:100]
    try:
        _orders().account_confirm(token, (request.form.get("password") or "")[:256])
    except errors.ValidationFailed as exc:
        if "password" in exc.fields:
            return _render("cabinet/confirm.html", 422, token=token, message=tc("wrong_signup_password"))
        return _render("cabinet/notice.html", 400, title=tc("confirm_title"), text=tc("bad_link"), error=True,
                       offer_new_link=True)
    flash(tc("confirmed"), "ok")
    return redirect(url_for("cabinet.signin"), 303)


@bp.get("/destination")
def destination():
    """The link of a withdrawal letter: a page with a button (a GET changes nothing: mail scanners open links)."""
    return _render("cabinet/destination.html", token=request.args.get("token", "")[:100])


@bp.post("/destination")
@account_api.account_limits
def destination_post():
    tc = texts(current_language())
    try:
        _orders().confirm_withdrawal_destination((request.form.get("token") or "")[:100])
    except errors.ValidationFailed:
        return _render("cabinet/notice.html", 400, title=tc("destination_title"), text=tc("bad_link"), error=True)
    return _render("cabinet/notice.html", title=tc("destination_title"), text=tc("destination_done"))


# -- sign-in and out -------------------------------------------------------------------------------------------
@bp.get("/signin")
def signin():
    if current_account() is not None:
        return redirect(url_for("cabinet.home"))
    return _render("cabinet/signin.html", form={}, next=request.args.get("next", ""))


@bp.post("/signin")
@account_api.account_limits
def signin_post():
    tc = texts(current_language())
    email = (request.form.get("email") or "").strip()
    target = _safe_next(request.form.get("next"))
    code = (request.form.get("code") or "").strip()[:8]
    raw, result = account_api.sign_in(email, request.form.get("password") or "", "web", _session_seconds(), code)
    if not result["ok"]:
        reason = result["reason"]
        if reason == "throttled":
            response = current_app.make_response(_render(
                "cabinet/signin.html", 429, form={"email": email}, next=target, need_code=bool(code),
                message=tc("throttled") % result["retry_after"]))
            response.headers["Retry-After"] = str(int(result["retry_after"]))
            return response
        message = {"unconfirmed": tc("unconfirmed"), "code_required": tc("code_needed")}.get(
            reason, tc("wrong_credentials"))
        return _render("cabinet/signin.html", 200, form={"email": email}, next=target, message=message,
                       need_code=reason == "code_required" or bool(code))
    old = request.cookies.get(cookie_name())
    if old and len(old) < 100:
        _orders().account_sign_out(account_api.hash_token(old))
    # A fresh Flask session (new CSRF secret) with the new sign-in; the language and the referral code stay.
    keep = {k: session[k] for k in ("lang", "ref") if k in session}
    session.clear()
    session.update(keep)
    return _set_cookie(redirect(target, 303), raw)


@bp.post("/signout")
def signout():
    raw = request.cookies.get(cookie_name())
    if raw and len(raw) < 100:
        _orders().account_sign_out(account_api.hash_token(raw))
    response = redirect(url_for("cabinet.signin"), 303)
    response.delete_cookie(cookie_name(), path="/", secure=current_app.config["COOKIE_SECURE"], httponly=True,
                           samesite="Lax")
    return response


# -- password reset --------------------------------------------------------------------------------------------
@bp.get("/reset")
def reset():
    return _render("cabinet/reset.html", token=request.args.get("token", "")[:100], errors={})


@bp.post("/reset")
@account_api.account_limits
@account_api.account_letter_limits
def reset_post():
    tc = texts(current_language())
    token = (request.form.get("token") or "")[:100]
    if not token:  # step 1: ask for the letter
        try:
            account_api.request_reset((request.form.get("email") or "").strip())
        except errors.ValidationFailed as exc:
            return _render("cabinet/reset.html", token="", errors=field_messages(exc.fields, current_language()),
                           message=tc("form_errors"))
        return _render("cabinet/notice.html", title=tc("check_mail"), text=tc("reset_sent"))
    try:  # step 2: the letter's link, a new password
        _orders().account_password_reset(token, request.form.get("password") or "")
    except errors.ValidationFailed as exc:
        if "token" in exc.fields:
            return _render("cabinet/notice.html", 400, title=tc("reset_title"), text=tc("bad_link"), error=True)
        return _render("cabinet/reset.html", token=token, errors=field_messages(exc.fields, current_language()),
                       message=tc("form_errors"))
    flash(tc("reset_done"), "ok")
    return redirect(url_for("cabinet.signin"), 303)


# -- the cabinet -----------------------------------------------------------------------------------------------
@bp.get("/")
@account_page
def home():
    me = current_account()
    exchanges = _orders().account_orders(me["id"], 50)
    try:
        messages = rpc.service("notifier").list_messages(account_api.inbox_owner(me), False, 50)
    except RpcError:  # the notifier is down: the rest of the cabinet still shows
        messages = None
    partner = None
    if me.get("partner"):
        partner = _orders().partner_overview(me["id"])
        partner["link"] = referral_link(partner["code"])
    t = translator(current_language())
    return _render("cabinet/home.html", me=me, exchanges=exchanges["items"], messages=messages, partner=partner,
                   status_texts={s: t("st_" + s) for s in STATUSES}, request_id=uuid.uuid4().hex,
                   enrolment=g.pop("totp_enrolment", None))


# -- security: password, two-factor codes ---------------------------------------------------------------------
@bp.post("/password")
@account_page
@account_api.account_limits
def change_password():
    tc = texts(current_language())
    raw = request.cookies.get(cookie_name(), "")
    try:
        _orders().account_change_password(current_account()["id"], (request.form.get("current_password") or "")[:256],
                                          (request.form.get("password") or "")[:256],
                                          account_api.hash_token(raw))
        flash(tc("password_changed"), "ok")
    except errors.ValidationFailed as exc:
        flash("%s: %s" % (tc("not_saved"), _fields_message(exc)), "error")
    return redirect(url_for("cabinet.home") + "#security", 303)


@bp.post("/totp")
@account_page
def totp_begin():
    """Enrolment: the secret and its QR code are shown once, on this answer (not stored in the page session)."""
    tc = texts(current_language())
    try:
        enrolment = _orders().account_totp_begin(current_account()["id"])
    except errors.Conflict:
        flash(tc("totp_enabled"), "ok")
        return redirect(url_for("cabinet.home") + "#security", 303)
    enrolment["qr"] = segno.make(enrolment["otpauth_uri"], error="m").svg_inline(scale=4, dark="#111",
                                                                                 light="#fff")
    g.totp_enrolment = enrolment
    return home()


@bp.post("/totp/confirm")
@account_page
@account_api.account_limits
def totp_confirm():
    tc = texts(current_language())
    try:
        _orders().account_totp_confirm(current_account()["id"], (request.form.get("code") or "")[:8])
        flash(tc("totp_enabled"), "ok")
    except errors.ValidationFailed as exc:
        flash("%s: %s" % (tc("not_saved"), _fields_message(exc)), "error")
    return redirect(url_for("cabinet.home") + "#security", 303)


@bp.post("/totp/disable")
@account_page
@account_api.account_limits
def totp_disable():
    tc = texts(current_language())
    try:
        _orders().account_totp_disable(current_account()["id"], (request.form.get("password") or "")[:256],
                                       (request.form.get("code") or "")[:8])
        flash(tc("totp_disabled"), "ok")
    except errors.ValidationFailed as exc:
        flash("%s: %s" % (tc("not_saved"), _fields_message(exc)), "error")
    return redirect(url_for("cabinet.home") + "#security", 303)


@bp.post("/partner")
@account_page
def join():
    _orders().become_partner(current_account()["id"])
    flash(texts(current_language())("join_done"), "ok")
    return redirect(url_for("cabinet.home") + "#partner", 303)


@bp.post("/withdrawals")
@account_page
def withdraw():
    tc = texts(current_language())
    amount = (request.form.get("amount") or "").strip().replace(",", ".")
    try:
        withdrawal = _orders().request_withdrawal(
            current_account()["id"], amount, (request.form.get("currency") or "")[:16],
            (request.form.get("to_account") or "")[:200],
            "web-%s" % (request.form.get("request_id") or "")[:64] if request.form.get("request_id") else None)
        flash(tc("withdrawal_sent") if withdrawal.get("destination_confirmed", True)
              else tc("withdrawal_confirm_mail"), "ok")
    except (errors.ValidationFailed, errors.Conflict, errors.NotFound) as exc:
        # shown next to the withdrawal form, naming the currency (not at the top of the page)
        currency = (request.form.get("currency") or "")[:16]
        flash("%s: %s" % (tc("withdrawal_not_saved").replace("{currency}", currency), _fields_message(exc)),
              "withdrawal")
    return redirect(url_for("cabinet.home") + "#withdrawals", 303)


@bp.post("/messages/read")
@account_page
def read_all():
    me = current_account()
    owner = account_api.inbox_owner(me)
    unread = rpc.service("notifier").list_messages(owner, True, 200)["items"]
    if unread:
        rpc.service("notifier").mark_read(owner, [m["id"] for m in unread])
    return redirect(url_for("cabinet.home") + "#inbox", 303)
