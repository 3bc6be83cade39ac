"""Customer page texts in English and Russian. The language comes from ?lang=, then the visitor's earlier choice
(kept in the signed session cookie), then Accept-Language."""
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
