"""The notifier in a real container: order events in, real letters out through the aiosmtpd dev server, once."""
import eventlet

from tests.conftest import eventually
from tests.interface.notifier import factories
from tests.interface.notifier.conftest import html_of, text_of, unique_email


def rows_for(db, order_id):
    return db.fetchall("SELECT * FROM notifications WHERE order_id = %s ORDER BY kind", (order_id,))


def test_manual_order_created_sends_l1_and_l8_once(notifier, publish, devsmtp, db, settings):
    admin = settings()["admin_email"]
    order = factories.order("manual", email=unique_email())
    publish(factories.created(order))
    customer = eventually(lambda: devsmtp.letters(order["email"]), message="L1 arrived")
    staff = eventually(lambda: devsmtp.letters(admin, order["id"]), message="L8 arrived")
    eventually(lambda: all(r["status"] == "sent" for r in rows_for(db, order["id"])) and rows_for(db, order["id"]))
    assert [m["X-Exchanger-Kind"] for m in customer] == ["L1"]
    assert [m["X-Exchanger-Kind"] for m in staff] == ["L8"]
    letter = customer[0]
    assert letter["From"] == "Exchanger <noreply@exchanger.test>"
    assert letter["X-Exchanger-Order"] == str(order["id"])
    assert letter.is_multipart() and "https://exchanger.test/orders/%s" % order["token"] in text_of(letter)
    assert "106.465 USDT" in html_of(letter)
    rows = rows_for(db, order["id"])
    assert [(r["kind"], r["channel"], r["status"], r["attempts"]) for r in rows] == [
        ("L1", "email", "sent", 1), ("L8", "email", "sent", 1)]
    assert rows[0]["provider_id"] == letter["Message-ID"]
    assert rows[0]["body_text"] == text_of(letter).strip()  # the log keeps exactly what went out


def test_the_same_event_twice_and_at_once_gives_one_letter(notifier, publish, devsmtp, db, settings):
    settings(admin_email=None)
    order = factories.order("manual", email=unique_email())
    envelope = factories.created(order)
    threads = [eventlet.spawn(publish, envelope) for _ in range(3)]
    for t in threads:
        t.wait()
    publish(envelope)
    eventually(lambda: devsmtp.letters(order["email"]), message="L1 arrived")
    eventually(lambda: db.fetchone("SELECT count(*) AS n FROM processed_events WHERE event_id = %s",
                                   (envelope["event_id"],))["n"] == 1)
    # Every delivery has been handled (nothing left in the queue) before we count letters.
    eventually(lambda: _queue_empty("evt-orders-order_created--notifier.handle_order_created"), timeout=10)
    eventlet.sleep(0.5)
    assert len(devsmtp.letters(order["email"])) == 1
    assert len(rows_for(db, order["id"])) == 1


def test_a_second_event_for_the_same_send_adds_nothing(notifier, publish, devsmtp, db, settings):
    """Two different events (e.g. a replayed status change with a new event id) for one (order, kind, channel)."""
    settings(admin_email=None)
    order = factories.order("manual", email=unique_email())
    first, second = factories.created(order), factories.created(order)
    publish(first)
    publish(second)
    eventually(lambda: db.fetchone("SELECT count(*) AS n FROM processed_events WHERE event_id IN (%s, %s)",
                                   (first["event_id"], second["event_id"]))["n"] == 2, message="both consumed")
    eventually(lambda: devsmtp.letters(order["email"]))
    eventlet.sleep(0.5)
    assert len(devsmtp.letters(order["email"])) == 1
    assert len(rows_for(db, order["id"])) == 1


def test_manual_lifecycle_letters_with_notice_and_reason(notifier, publish, devsmtp, settings):
    admin = settings()["admin_email"]
    order = factories.order("manual", email=unique_email(), language="ru")
    publish(factories.created(order))
    claimed, event = factories.changed(order, "new", "payment_claimed", action="claim", actor_kind="customer")
    publish(event)
    processing, event = factories.changed(claimed, "payment_claimed", "processing", action="process",
                                          note="Платёж найден, спасибо!")
    publish(event)
    done, event = factories.changed(processing, "processing", "completed", action="finalize",
                                    note="Sent from wallet W-7")
    publish(event)
    other = factories.order("manual", email=unique_email())
    _, event = factories.changed(other, "new", "canceled", action="cancel", note="Amount did not match")
    publish(event)

    kinds = lambda to, oid=None: sorted(m["X-Exchanger-Kind"] for m in devsmtp.letters(to, oid))  # noqa: E731
    eventually(lambda: kinds(order["email"]) == ["L1", "L2", "L3"], message="customer letters")
    eventually(lambda: kinds(admin, order["id"]) == ["L8", "L9"], message="admin letters")
    eventually(lambda: kinds(other["email"]) == ["L4"], message="cancel letter")
    by_kind = {m["X-Exchanger-Kind"]: m for m in devsmtp.letters(order["email"])}
    assert "Платёж найден, спасибо!" in text_of(by_kind["L2"]) and by_kind["L2"]["Subject"].startswith("Заявка ")
    assert "Sent from wallet W-7" in text_of(by_kind["L3"])
    assert "Amount did not match" in text_of(devsmtp.letters(other["email"])[0])


def test_payment_events_letters(notifier, publish, devsmtp, settings):
    """semi_auto paid -> L7; payout error -> L10; auto completed -> L3 + L6 (payments drives these)."""
    admin = settings()["admin_email"]
    semi = factories.order("semi_auto", email=unique_email())
    paid, event = factories.changed(semi, "new", "paid", action="pay", actor_kind="system")
    publish(event)
    payout, event = factories.changed(paid, "paid", "payout", action="payout")
    publish(event)
    _, event = factories.changed(payout, "payout", "payout_error", action="payout_failed", actor_kind="system",
                                 note="provider: insufficient funds")
    publish(event)
    auto = factories.order("auto", email=unique_email())
    _, event = factories.changed(dict(auto, status="payout"), "payout", "completed", action="payout_sent",
                                 actor_kind="system")
    publish(event)
    admin_kinds = lambda: sorted(m["X-Exchanger-Kind"] for oid in (semi["id"], auto["id"])  # noqa: E731
                                 for m in devsmtp.letters(admin, oid))
    eventually(lambda: admin_kinds() == ["L10", "L6", "L7"], message="admin letters")
    eventually(lambda: [m["X-Exchanger-Kind"] for m in devsmtp.letters(auto["email"])] == ["L3"])
    assert devsmtp.letters(semi["email"]) == []
    l10 = next(m for m in devsmtp.letters(admin, semi["id"]) if m["X-Exchanger-Kind"] == "L10")
    assert "insufficient funds" in text_of(l10)


def test_smtp_outage_then_the_letter_arrives_once(notifier, publish, devsmtp, db, settings):
    settings(admin_email=None)
    order = factories.order("manual", email=unique_email())
    devsmtp.stop()
    try:
        publish(factories.created(order))
        row = eventually(lambda: (r := db.fetchone("SELECT * FROM notifications WHERE order_id = %s",
                                                   (order["id"],))) and r["attempts"] >= 2 and r,
                         message="failed attempts while SMTP is down")
        assert row["status"] in ("pending", "sending") and "SMTP unavailable" in (row["last_error"] or "")
        assert devsmtp.letters(order["email"]) == []
    finally:
        devsmtp.start()
    eventually(lambda: db.fetchone("SELECT status FROM notifications WHERE order_id = %s",
                                   (order["id"],))["status"] == "sent", message="sent after the outage")
    assert len(devsmtp.letters(order["email"])) == 1
    attempts = db.fetchall("SELECT outcome FROM notification_attempts a JOIN notifications n "
                           "ON n.id = a.notification_id WHERE n.order_id = %s ORDER BY a.id", (order["id"],))
    assert [a["outcome"] for a in attempts][-1] == "sent" and "retry" in [a["outcome"] for a in attempts]


def test_malformed_event_goes_to_the_dead_letter_queue(notifier, publish):
    from libs.amqp_publish import connect
    from tests.conftest import TEST_AMQP_URI
    dlq = "evt-orders-order_created--notifier.handle_order_created.dlq"
    before = _count(dlq)
    publish({"event_id": "8f8a3a8e-0000-4000-8000-000000000001", "event_type": "order_created",
             "source": "orders", "occurred_at": "2026-01-01T00:00:00+00:00", "data": {"order": {"id": "x"}}})
    eventually(lambda: _count(dlq) == before + 1, message="dead-lettered")
    conn = connect(TEST_AMQP_URI)
    conn.channel().queue_purge(dlq)
    conn.close()


def _count(queue):
    from libs.amqp_publish import connect
    from tests.conftest import TEST_AMQP_URI
    conn = connect(TEST_AMQP_URI)
    try:
        return conn.channel().queue_declare(queue, passive=True)[1]
    finally:
        conn.close()


def _queue_empty(queue):
    return _count(queue) == 0
