"""Letters, SMS and private messages from template files: templates/<kind>/<language>/{subject.txt, body.txt,
body.html, sms.txt}, with shared partials (_details.* for customers, _admin.* for the admin) and one HTML layout.

Rendered when the notification is created (in the consumer's transaction), so the log keeps exactly the text
that went out, and a resend sends the same text.
"""
import os

import jinja2
from markupsafe import Markup, escape

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")

STATUS_LABELS = {
    "en": {"new": "Awaiting payment", "payment_claimed": "Payment reported, being checked",
           "processing": "Funds received, payout pending", "paid": "Funds received", "payout": "Payout in progress",
           "payout_error": "Payout in progress", "completed": "Completed", "canceled": "Canceled",
           "expired": "Expired", "deleted": "Deleted"},
    "ru": {"new": "Ожидает оплаты", "payment_claimed": "Оплата проверяется",
           "processing": "Средства получены, ожидает выплаты", "paid": "Средства получены",
           "payout": "Выполняется выплата", "payout_error": "Выполняется выплата", "completed": "Выполнена",
           "canceled": "Отменена", "expired": "Просрочена", "deleted": "Удалена"},
}
TYPE_LABELS = {
    "en": {"auto": "automatic", "semi_auto": "semi-automatic", "manual": "operator processing"},
    "ru": {"auto": "автоматическая", "semi_auto": "полуавтоматическая", "manual": "ручная обработка"},
}


def _nl2br(value):
    return Markup("<br>\n").join(escape(line) for line in str(value).splitlines())


class Renderer:
    def __init__(self, public_url, site_name="Exchanger", templates=TEMPLATES):
        self.public_url = (public_url or "").rstrip("/")
        self.site_name = site_name
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=jinja2.StrictUndefined, auto_reload=False)
        self.env.filters["nl2br"] = _nl2br

    def _render(self, name, context):
        return self.env.get_template(name).render(**context).strip()

    def order_context(self, order, language, note=None):
        return {
            "order": order,
            "language": language,
            "site_name": self.site_name,
            "status_label": STATUS_LABELS[language].get(order["status"], order["status"]),
            "type_label": TYPE_LABELS[language].get(order["exchange_type"], order["exchange_type"]),
            "order_url": "%s/orders/%s" % (self.public_url, order["token"]),
            "admin_url": "%s/admin/orders/%s" % (self.public_url, order["id"]),
            "notice": order.get("notice"),
            "reason": order.get("cancel_reason") or (note if order["status"] == "canceled" else None),
            "note": note,
        }

    def render(self, kind, channel, language, context):
        """Returns (subject, body_text, body_html); SMS have only a body."""
        if channel == "sms":
            return None, self._render("%s/%s/sms.txt" % (kind, language), context), None
        subject = " ".join(self._render("%s/%s/subject.txt" % (kind, language), context).split())
        context = dict(context, subject=subject)
        text = self._render("%s/%s/body.txt" % (kind, language), context)
        html = None
        if channel == "email":
            html = self._render("%s/%s/body.html" % (kind, language), context)
        return subject, text, html

    def render_order(self, kind, channel, language, order, note=None):
        return self.render(kind, channel, language, self.order_context(order, language, note))

    def render_alert(self, language, subject, body):
        return self.render("ALERT", "email", language, {
            "language": language, "site_name": self.site_name, "alert_subject": subject, "alert_body": body})

    def render_alert_sms(self, language, subject):
        return self.render("ALERT", "sms", language, {
            "language": language, "site_name": self.site_name, "alert_subject": subject})[1]

    def render_partner_credit(self, language, credit):
        return self.render("L5", "inbox", language, {"language": language, "site_name": self.site_name,
                                                     "credit": credit})
