"""Customer page texts in English and Russian. The language comes from ?lang=, then the visitor's earlier choice
(kept in the signed session cookie), then Accept-Language.

The services answer field errors in English (marshmallow's and the orders rules' wording); `field_message` turns
each into the page's language, so no English reaches a Russian page (tests/e2e/test_pages_language.py fails on one)."""
import re

from flask import request, session

LANGUAGES = ("en", "ru")

TEXTS = {
    "title": ("Exchange", "Обмен"),
    "tagline": ("Fast exchange between payment systems", "Быстрый обмен между платёжными системами"),
    "direction": ("Direction", "Направление"),
    "you_give": ("You give", "Вы отдаёте"),
    "you_get": ("You get", "Вы получаете"),
    "rate": ("Rate", "Курс"),
    "rate_floating": ("Floating rate: you get the amount at our rate when your payment arrives; the figure above "
                      "is at today's rate.",
                      "Плавающий курс: сумма к получению считается по нашему курсу на момент поступления оплаты; "
                      "выше — по сегодняшнему курсу."),
    "rate_kind": ("Rate type", "Тип курса"),
    "rate_fixed": ("The rate is fixed for the payment window.", "Курс зафиксирован на время оплаты."),
    "fee": ("Fee", "Комиссия"),
    "limits": ("Limits", "Лимиты"),
    "reserve": ("Reserve", "Резерв"),
    "email": ("E-mail", "E-mail"),
    "recipient": ("Your account to receive", "Ваш счёт для получения"),
    "phone": ("Phone (optional)", "Телефон (необязательно)"),
    "sms_opt_in": ("Send me an SMS when it is done (for a fee)", "Прислать SMS о завершении (платно)"),
    "partner": ("Partner code", "Код партнёра"),
    "submit": ("Create exchange request", "Создать заявку"),
    "type_auto": ("automatic", "автоматически"),
    "type_semi_auto": ("semi-automatic", "полуавтоматически"),
    "type_manual": ("by an operator", "оператором"),
    "no_directions": ("No exchange directions are open right now.", "Сейчас нет открытых направлений обмена."),
    "form_errors": ("Please correct the marked fields.", "Исправьте отмеченные поля."),
    "too_many_orders": ("Too many orders from you or for this e-mail address just now. Please try again later.",
                        "Слишком много заявок с вашего адреса или на этот e-mail. Попробуйте позже."),
    "unavailable": ("The service is temporarily unavailable. Please try again in a minute.",
                    "Сервис временно недоступен. Попробуйте через минуту."),
    "order": ("Exchange request", "Заявка на обмен"),
    "status": ("Status", "Статус"),
    "pay_title": ("How to pay", "Как оплатить"),
    "pay_to": ("Pay to account", "Счёт для оплаты"),
    "pay_system": ("Payment system", "Платёжная система"),
    "exact_amount": ("Exact amount", "Точная сумма"),
    "reference": ("Payment reference", "Назначение платежа"),
    "reference_hint": ("Put this reference in the payment, or we cannot match it.",
                       "Укажите это назначение в платеже, иначе мы не сможем его найти."),
    "time_left": ("Time left to pay", "Осталось времени на оплату"),
    "expired_note": ("The time to pay has run out.", "Время на оплату истекло."),
    "deposit_address": ("Send to this address", "Отправьте на этот адрес"),
    "deposit_hint": ("This address is this order's alone: no reference is needed. The order is paid once the "
                     "transfer has the required confirmations.",
                     "Этот адрес только для этой заявки: указывать номер не нужно. Заявка оплачена, когда у перевода "
                     "будет нужное число подтверждений."),
    "deposits_seen": ("Transfers to your deposit address", "Переводы на ваш адрес"),
    "confirmations": ("confirmations", "подтверждений"),
    "dep_confirming": ("confirming", "подтверждается"),
    "dep_credited": ("credited", "зачислен"),
    "dep_removed": ("dropped by the network, waiting for it to be mined again",
                    "выпал из цепочки, ждём повторного включения"),
    "dep_reversed": ("reversed after crediting: an operator will contact you",
                     "отменён после зачисления: оператор свяжется с вами"),
    "pay_in_sandbox": ("Pay in the sandbox bank", "Оплатить в тестовом банке"),
    "i_have_paid": ("I have paid", "Я оплатил"),
    "cancel": ("Cancel the request", "Отменить заявку"),
    "cancel_confirm": ("Cancel this request?", "Отменить эту заявку?"),
    "timeline": ("History", "История"),
    "created": ("Created", "Создана"),
    "updated_live": ("This page updates by itself.", "Страница обновляется сама."),
    "not_found": ("Request not found. Check the link.", "Заявка не найдена. Проверьте ссылку."),
    "conflict": ("This is not possible in the request's current status.",
                 "Это невозможно в текущем статусе заявки."),
    "form_expired": ("The form has expired. Please try again.", "Форма устарела. Попробуйте ещё раз."),
    "too_many": ("Too many attempts. Please wait a minute.", "Слишком много попыток. Подождите минуту."),
    "error": ("Something went wrong. Please try again.", "Что-то пошло не так. Попробуйте ещё раз."),
    "notice": ("Message from the operator", "Сообщение оператора"),
    "cancel_reason": ("Reason", "Причина"),
    "keep_link": ("Keep this page's address: it is the only way to your request.",
                  "Сохраните адрес этой страницы: это единственный доступ к заявке."),
    "min": ("min", "мин."),
    "max": ("max", "макс."),
    "back_home": ("New exchange", "Новый обмен"),
    "st_new": ("Waiting for your payment", "Ожидает оплаты"),
    "st_payment_claimed": ("Payment reported, being checked", "Оплата заявлена, проверяется"),
    "st_processing": ("Funds received, payout pending", "Средства получены, ожидает выплаты"),
    "st_paid": ("Funds received", "Средства получены"),
    "st_payout": ("Exchange in progress", "Выполняется обмен"),
    "st_payout_error": ("Payout delayed, an operator is on it", "Выплата задерживается, оператор разбирается"),
    "st_completed": ("Completed", "Завершена"),
    "st_canceled": ("Canceled", "Отменена"),
    "st_expired": ("Expired (not paid in time)", "Истекла (не оплачена вовремя)"),
    "st_deleted": ("Deleted", "Удалена"),
    "lang_other": ("Русский", "English"),
    # the order page: the payment block, a payment that does not fit, the timeline in sentences (issue 15)
    "copy": ("Copy", "Копировать"),
    "copied": ("Copied", "Скопировано"),
    "qr_hint": ("Scan to pay from your phone", "Отсканируйте, чтобы оплатить с телефона"),
    "qr_label": ("QR code with the payment details", "QR-код с реквизитами платежа"),
    "pay_until": ("Pay by", "Оплатить до"),
    "new_tab": ("opens in a new tab", "откроется в новой вкладке"),
    "times_zone": ("Times are in your time zone.", "Время указано в вашем часовом поясе."),
    "mismatch_title": ("Your payment does not match the request", "Ваш платёж не совпадает с заявкой"),
    "received": ("Received", "Получено"),
    "expected": ("Expected", "Ожидалось"),
    "still_owed": ("Missing", "Не хватает"),
    "overpaid": ("Paid over", "Переплата"),
    "mismatch_partial_next": ("Please do not send the rest on your own. An operator checks the request and either "
                              "pays out for what arrived or refunds it; you get a letter either way.",
                              "Пожалуйста, не доплачивайте самостоятельно. Оператор проверит заявку и либо "
                              "выплатит по полученной сумме, либо вернёт платёж; в любом случае вы получите "
                              "письмо."),
    "mismatch_over_next": ("An operator checks the request and contacts you about the amount paid over; you get a "
                           "letter.",
                           "Оператор проверит заявку и свяжется с вами насчёт переплаты; вы получите письмо."),
    "mismatch_late_next": ("The payment arrived after the time to pay ran out. An operator checks whether the "
                           "exchange can still be made or refunds it; you get a letter.",
                           "Платёж пришёл после окончания срока оплаты. Оператор проверит, можно ли ещё выполнить "
                           "обмен, или вернёт платёж; вы получите письмо."),
    "ev_create": ("Request created", "Заявка создана"),
    "ev_claim": ("You reported the payment", "Вы сообщили об оплате"),
    "ev_pay": ("Your payment arrived", "Ваш платёж получен"),
    "ev_pay_partial": ("Your payment arrived, less than asked", "Ваш платёж получен, но меньше нужной суммы"),
    "ev_pay_over": ("Your payment arrived, more than asked", "Ваш платёж получен, но больше нужной суммы"),
    "ev_pay_late": ("Your payment arrived after the deadline", "Ваш платёж получен после окончания срока"),
    "ev_expire": ("The time to pay ran out", "Время на оплату истекло"),
    "ev_customer_cancel": ("You canceled the request", "Вы отменили заявку"),
    "ev_process": ("The operator confirmed your payment", "Оператор подтвердил вашу оплату"),
    "ev_finalize": ("Exchange completed", "Обмен завершён"),
    "ev_cancel": ("The request was canceled", "Заявка отменена"),
    "ev_payout": ("The payout has been started", "Выплата начата"),
    "ev_payout_sent": ("The money has been sent to you", "Деньги отправлены вам"),
    "ev_payout_failed": ("The payout is delayed, an operator is on it", "Выплата задерживается, оператор разбирается"),
    "semi_auto_paid": ("An operator confirms the payout shortly.", "Оператор вскоре подтвердит выплату."),
    "ps_sandbox": ("Sandbox Bank (demo)", "Тестовый банк Sandbox (демо)"),
    "page_not_found": ("Page not found.", "Страница не найдена."),
    "method_not_allowed": ("This address does not take that kind of request.",
                           "Этот адрес не принимает такой запрос."),
    "bad_request": ("The request could not be understood.", "Запрос не удалось разобрать."),
    "forbidden": ("You may not open this page.", "У вас нет доступа к этой странице."),
    "my_account": ("My account", "Личный кабинет"),
    # amount errors: the live quote (exchange.js) and the server's answer (FIELD_MESSAGES below) say the same
    "err_number": ("not a number", "Введите число, например 100,50."),
    "err_too_large": ("is too large", "Слишком большое число."),
    "err_positive": ("must be greater than zero", "Сумма должна быть больше нуля."),
    "err_decimals": ("{cur} allows at most {n} decimal places", "{cur}: не больше {n} знаков после запятой."),
    "err_min": ("must be at least {amount} {cur}", "Минимальная сумма: {amount} {cur}."),
    "err_max": ("must be at most {amount} {cur}", "Максимальная сумма: {amount} {cur}."),
    "err_reserve": ("we can pay out at most {amount} {cur} now", "Сейчас мы можем выплатить не больше {amount} {cur}."),
    "partner_unknown": ("There is no partner with this code.", "Партнёра с таким кодом нет."),
    # the operator page of stuck money work (gateway/pages/stuck.py)
    "stuck_title": ("Stuck work", "Зависшие операции"),
    "stuck_intro": ("Money work that should have moved on and has not. Repairs are audited.",
                    "Денежные операции, которые должны были пройти дальше, но не прошли. "
                    "Исправления записываются в журнал."),
    "stuck_none": ("Nothing is stuck.", "Ничего не зависло."),
    "stuck_unavailable": ("Not answering", "Не отвечает"),
    "stuck_kind": ("What", "Что"),
    "stuck_item": ("Item", "Объект"),
    "stuck_order": ("Request", "Заявка"),
    "stuck_age": ("Stuck for", "Висит"),
    "stuck_detail": ("Detail", "Подробности"),
    "stuck_repair": ("Repair", "Исправить"),
    "stuck_done": ("done", "выполнено"),
    "stuck_refused": ("refused", "отказано"),
    "stuck_kind_payout_missing": ("Request in payout without a payout", "Заявка в выплате без выплаты"),
    "stuck_kind_payment_on_unpaid_order": ("Payment on an unpaid request", "Платёж по неоплаченной заявке"),
    "stuck_kind_payout_in_doubt": ("Payout in doubt", "Выплата под вопросом"),
    "stuck_kind_withdrawal_not_paid": ("Partner withdrawal not paid", "Вывод партнёра не выплачен"),
    "stuck_action_create_payout": ("Create the payout", "Создать выплату"),
    "stuck_action_unmatch": ("Move to unmatched", "В неразобранные"),
    "stuck_action_reconcile": ("Ask the payment system now", "Запросить платёжную систему"),
    "stuck_action_resend_request": ("Request the payout again", "Запросить выплату повторно"),
    # the operator's request page: a payout resolved failed that went out after all (docs/payments.md)
    "late_paid_badge": ("Paid out after resolve", "Выплачено после ручного решения"),
    "late_paid_hint": ("The payout was resolved failed, but the money went out: do not pay again, finalize the "
                       "request.",
                       "Выплата была отмечена неуспешной, но деньги ушли: не выплачивайте повторно, завершите "
                       "заявку."),
    "late_paid_provider": ("Provider transfer", "Перевод платёжной системы"),
}

def payment_system_name(key, lang):
    """The payment system's name for people (the internal key only when no name is known yet)."""
    text = TEXTS.get("ps_" + str(key))
    return text[1 if lang == "ru" else 0] if text else str(key).replace("_", " ").title()


def event_key(entry, order):
    """The TEXTS key of a history entry's sentence for the customer (the payment's flag says how it did not fit)."""
    action = entry.get("action")
    if action == "pay" and order.get("payment_flag"):
        return "ev_pay_" + order["payment_flag"]
    return "ev_" + action if "ev_" + str(action) in TEXTS else "st_" + entry["to_status"]


# what exchange.js says live, in the page's language
QUOTE_TEXTS = ("min", "max", "err_number", "err_too_large", "err_positive", "err_decimals", "err_min", "err_max",
               "err_reserve")

FIELD_NAMES = {"amount_in": "you_give", "email": "email", "recipient": "recipient", "phone": "phone",
               "sms_opt_in": "sms_opt_in", "partner_code": "partner", "direction_id": "direction"}


def current_language():
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        session["lang"] = asked
        return asked
    if session.get("lang") in LANGUAGES:
        return session["lang"]
    return request.accept_languages.best_match(LANGUAGES) or "en"


def translator(lang):
    index = LANGUAGES.index(lang) if lang in LANGUAGES else 0

    def t(key):
        pair = TEXTS.get(key)
        return pair[index] if pair else key
    return t


# (pattern of the English message, Russian) — the English text is shown as it is on English pages.
FIELD_MESSAGES = [
    (r"Missing data for required field\.|required", "Обязательное поле."),
    (r"Not a valid email address\.|must be an e-mail address", "Введите адрес e-mail, например name@example.com."),
    (r"Not a valid integer\.|Not a valid number\.", "Введите число."),
    (r"Not a valid boolean\.", "Выберите да или нет."),
    (r"Unknown field\.", "Неизвестное поле."),
    (r"must be a decimal string.*|not a number|must be finite", "@err_number"),
    (r"must be greater than zero", "@err_positive"),
    (r"is too large", "@err_too_large"),
    (r"has too many decimal places", "Слишком много знаков после запятой."),
    (r"(?P<cur>\S+) allows at most (?P<n>\d+) decimal places", "@err_decimals"),
    (r"at most (?P<n>\d+) decimal places", "Не больше {n} знаков после запятой."),
    (r"must be at least (?P<amount>[\d.]+) (?P<cur>\S+)", "@err_min"),
    (r"must be at most (?P<amount>[\d.]+) (?P<cur>\S+)", "@err_max"),
    (r"we can pay out at most (?P<amount>[\d.]+) (?P<cur>\S+) now", "@err_reserve"),
    (r"gives nothing after fees", "Сумма слишком мала: после комиссии ничего не остаётся."),
    (r"no such active direction", "Это направление обмена сейчас закрыто."),
    (r"international format.*", "Телефон в международном формате, например +4915112345678."),
    (r"needs a phone number", "Для SMS укажите номер телефона."),
    (r"must be 1 to 200 characters|Length must be between 1 and 200\.", "От 1 до 200 символов."),
    (r"Longer than maximum length (?P<n>\d+)\.", "Не длиннее {n} символов."),
    (r"Shorter than minimum length (?P<n>\d+)\.", "Не короче {n} символов."),
    (r"Length must be between (?P<a>\d+) and (?P<b>\d+)\.", "От {a} до {b} символов."),
    (r"String does not match expected pattern\.", "Недопустимые символы."),
    (r"at least (?P<n>\d+) characters", "Не короче {n} символов."),
    (r"at most (?P<n>\d+) characters", "Не длиннее {n} символов."),
    (r"too simple", "Слишком простой пароль."),
    (r"invalid or expired", "Ссылка недействительна или устарела."),
    (r"en or ru", "Язык: en или ru."),
    (r"unknown currency", "Неизвестная валюта."),
    (r"unknown partner code|no such partner", "Партнёра с таким кодом нет."),
    (r"must be at least (?P<amount>[\d.]+)", "Не меньше {amount}."),
    (r"your balance is (?P<amount>[\d.]+)", "На балансе только {amount}."),
    (r"above the balance", "Больше, чем на балансе."),
]
_FIELD_PATTERNS = [(re.compile(p + r"$", re.IGNORECASE), TEXTS[ru[1:]][1] if ru.startswith("@") else ru)
                   for p, ru in FIELD_MESSAGES]
UNKNOWN_FIELD_MESSAGE = ("Check this value.", "Проверьте это значение.")


def field_message(text, lang, fallback=UNKNOWN_FIELD_MESSAGE[1]):
    """One service field message in the page's language: the English text as it is, else its Russian wording (a
    message without one becomes a plain "check this value", never English on a Russian page)."""
    text = str(text).strip()
    if lang != "ru":
        return text
    for pattern, ru in _FIELD_PATTERNS:
        found = pattern.match(text)
        if found:
            return ru.format(**found.groupdict())
    return fallback


def field_messages(fields, lang):
    """{field: [message, ...]} of an API answer, each message in the page's language (nested ones flattened)."""
    out = {}
    for key, value in (fields or {}).items():
        values = value if isinstance(value, list) else [value]
        flat = []
        for item in values:
            if isinstance(item, dict):
                flat.extend(m for sub in item.values() for m in (sub if isinstance(sub, list) else [sub]))
            else:
                flat.append(item)
        out[key] = [field_message(m, lang) for m in flat]
    return out
