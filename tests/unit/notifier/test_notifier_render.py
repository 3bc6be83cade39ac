"""Templates: every kind in both languages renders from its files with all the order details a customer needs."""
import pytest

from services.notifier import domain
from services.notifier.render import Renderer
from libs.contracts.orders import OrderSnapshotSchema
from services.notifier.schemas import plain_order
from tests.interface.notifier import factories

R = Renderer("https://exchanger.example", "Exchanger")
EMAIL_KINDS = [r.kind for r in domain.RULES if r.channel == "email"]
SMS_KINDS = [r.kind for r in domain.RULES if r.channel == "sms"]


def snapshot(**kw):
    return plain_order(OrderSnapshotSchema().load(factories.order(**kw)))


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize("kind", EMAIL_KINDS)
def test_every_letter_renders_with_the_order_details(kind, language):
    order = snapshot(status="completed", language=language, notice="Paid from card 1234")
    subject, text, html = R.render_order(kind, "email", language, order)
    # a customer's letter names the request as its page does (the reference); operators' letters by the id
    name = order["reference"] if kind in ("L1", "L2", "L3", "L4") else str(order["id"])
    assert subject and "\n" not in subject and name in subject
    for value in ("100 EUR", "106.465 USDT", "1 EUR = 1.07 USDT", "USDT-ACC-42"):
        assert value in text, (kind, value)
        assert value in html, (kind, value)
    rule = next(r for r in domain.RULES if r.kind == kind)
    if rule.audience == "customer":
        link = "https://exchanger.example/orders/%s" % order["token"]
        assert link in text and link in html
        status = {"en": "Completed", "ru": "Выполнена"}[language]
        assert status in text
    else:
        assert "https://exchanger.example/admin/orders/%s" % order["id"] in text
        assert order["email"] in text
    assert html.startswith("<!doctype html>") and "</html>" in html


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize("kind", SMS_KINDS)
def test_every_sms_renders_short(kind, language):
    subject, text, html = R.render_order(kind, "sms", language, snapshot(language=language))
    assert subject is None and html is None
    assert str(snapshot()["id"])[:3] in text and len(text) <= 160


def test_russian_letters_are_russian():
    subject, text, _ = R.render_order("L1", "email", "ru", snapshot(language="ru"))
    assert subject.startswith("Заявка ") and "ожидает оплаты" in subject and "Получаете" in text
    assert "EXAB23CD45EF" in text and "Куда платить" in text


def test_notice_and_reason_appear_and_html_is_escaped():
    order = snapshot(status="processing", notice="<script>alert(1)</script>\nsecond line")
    _, text, html = R.render_order("L2", "email", "en", order)
    assert "<script>alert(1)</script>" in text and "second line" in text
    assert "<script>" not in html and "&lt;script&gt;" in html and "<br>" in html
    canceled = snapshot(status="canceled", cancel_reason="Payment not received in time")
    for language in ("en", "ru"):
        _, text, html = R.render_order("L4", "email", language, canceled)
        assert "Payment not received in time" in text and "Payment not received in time" in html


def test_completion_without_notice_has_no_empty_notice_block():
    _, text, _ = R.render_order("L3", "email", "en", snapshot(status="completed"))
    assert "Message from the operator" not in text


def test_l1_tells_where_to_pay():
    _, text, _ = R.render_order("L1", "email", "en", snapshot())
    assert "EXCH-EUR" in text and "EXAB23CD45EF" in text


def test_partner_message_and_alert():
    credit = {"partner_account_id": 7, "order_id": 42, "amount": "1.5", "currency": "USDT", "balance": "10"}
    subject, text, html = R.render_partner_credit("en", credit)
    assert "42" in subject and "1.5 USDT" in text and html is None
    subject, text, html = R.render_alert("en", "Sign-in from a new address", "op1 from 10.0.0.1 <b>")
    assert subject == "[Exchanger] Sign-in from a new address"
    assert "op1 from 10.0.0.1 <b>" in text and "&lt;b&gt;" in html
