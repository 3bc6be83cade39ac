"""Notifier storage: every read and write of the notifier schema.

The rules that keep sends exactly-once-ish live here:
- a consumer claims the event (inbox) and inserts its notification rows in ONE transaction; rows are unique per
  (order, kind, channel), so a redelivered or duplicated event adds nothing;
- the sender claims due rows (`pending`, or `sending` whose lease ran out) with SKIP LOCKED and commits them as
  `sending` BEFORE calling the provider; every later update is fenced on (status='sending', attempts), so a
  sender that lost its lease cannot overwrite the newer attempt.
"""
import datetime
import json
import logging

from libs import errors, inbox, money, outbox
from libs.audit import actor_name
from libs.contracts import events
from libs.contracts.notifier import ACCOUNT_NOTICE_KINDS, SMS_SUMMARY
from services.notifier import domain, metrics
from services.notifier.schemas import (attempt_to_wire, message_to_wire, notification_to_wire, plain_order,
                                       settings_to_wire)

log = logging.getLogger(__name__)

SOURCE = events.NOTIFIER
WAKE_CHANNEL = "notifier_send"
MAX_LIST = 500


class NotifierStore:
    def __init__(self, db, renderer, sms_configured=False, email_max_attempts=10, sms_max_attempts=5,
                 letters_per_hour=10, admin_sms_per_window=5, admin_sms_window_seconds=600):
        self.db = db
        self.renderer = renderer
        self.sms_configured = sms_configured
        self.max_attempts = {"email": email_max_attempts, "sms": sms_max_attempts, "inbox": 1}
        # Caps (docs/security.md, "Throttles and lockout"); 0 switches one off.
        self.letters_per_hour = letters_per_hour
        self.admin_sms_per_window = admin_sms_per_window
        self.admin_sms_window_seconds = admin_sms_window_seconds

    # -- settings --------------------------------------------------------------------------------------------
    def settings(self, cur=None, lock=False):
        sql = "SELECT * FROM settings WHERE id = 1" + (" FOR UPDATE" if lock else "")
        if cur is None:
            return self.db.fetchone(sql)
        cur.execute(sql)
        return cur.fetchone()

    def get_settings(self):
        return settings_to_wire(self.settings(), self.sms_configured)

    def _announce(self, cur, row, actor=None):
        payload = domain.settings_announcement(row, self.sms_configured)
        if row.get("announced") == payload and actor is None:
            return None
        data = dict(payload, changed_by=actor_name(actor))
        outbox.write_event(cur, SOURCE, events.SETTINGS_CHANGED, data, aggregate_id="settings")
        cur.execute("UPDATE settings SET announced = %s WHERE id = 1", (json.dumps(payload),))
        return data

    def announce_if_changed(self):
        """At start: announce the effective settings if they differ from the last announcement (the first start,
        or Twilio credentials added or removed in the environment)."""
        with self.db.transaction() as cur:
            row = self.settings(cur, lock=True)
            return self._announce(cur, row)

    def put_settings(self, clean, actor, expected_version=None):
        """Apply checked values (schemas.load_settings_change) of an admin (schemas.check_admin): history row,
        announcement and alert letter in the same transaction."""
        with self.db.transaction() as cur:
            current = self.settings(cur, lock=True)
            if expected_version is not None and int(expected_version) != current["version"]:
                raise errors.Conflict("settings were changed meanwhile (version %s)" % current["version"],
                                      {"version": [str(current["version"])]})
            before = settings_to_wire(current)
            changed = domain.changed_settings(current, clean)
            if not changed:
                return settings_to_wire(current, self.sms_configured)  # nothing to do (also: a repeated RPC)
            sets = ", ".join("%s = %%(%s)s" % (k, k) for k in changed)
            params = dict(changed, actor=actor_name(actor))
            cur.execute("UPDATE settings SET " + sets + ", version = version + 1, updated_by = %(actor)s, "
                        "updated_at = now() WHERE id = 1 RETURNING *", params)
            row = cur.fetchone()
            after = settings_to_wire(row)
            cur.execute("INSERT INTO settings_history (version, actor, actor_role, actor_ip, before, after) "
                        "VALUES (%s, %s, %s, %s, %s, %s)",
                        (row["version"], actor_name(actor), actor.get("role"), actor.get("ip"),
                         json.dumps(before), json.dumps(after)))
            self._announce(cur, row, actor)
            self._settings_alert(cur, before, after, actor)
        return settings_to_wire(row, self.sms_configured)

    def _settings_alert(self, cur, before, after, actor):
        """Every change of notification settings is mailed to the admin address, the old one too when it
        changes (someone redirecting the alerts is exactly what the old address must hear about)."""
        text = domain.settings_change_text(before, after, actor_name(actor), actor.get("role"), actor.get("ip"),
                                           datetime.datetime.now(datetime.timezone.utc))
        recipients = [a for a in (before.get("admin_email"), after.get("admin_email")) if a]
        self.queue_alert_in(cur, "Notification settings changed", text,
                            "settings-v%s" % after["version"], recipients, after["admin_language"], sms=True)

    # -- alerts ----------------------------------------------------------------------------------------------
    def queue_alert(self, subject, body, key, recipients=None, sms=False):
        with self.db.transaction() as cur:
            return self.queue_alert_in(cur, subject, body, key, recipients, sms=sms)

    def queue_alert_in(self, cur, subject, body, key, recipients=None, language=None, sms=False):
        """A letter to the admin address that belongs to no order. `key` makes a repeated call a no-op. With
        `sms`, also a text to the admin phone when SMS is on (security changes, docs/security.md)."""
        settings = self.settings(cur)
        if recipients is None:
            recipients = [settings["admin_email"]] if settings["admin_email"] else []
        # and every admin's own address (the gateway keeps the list: set_alert_recipients, docs/security.md)
        recipients = list(recipients) + list(settings.get("alert_emails") or [])
        language = language or settings["admin_language"]
        subject_r, text, html = self.renderer.render_alert(language, subject, body)
        ids = []
        for recipient in dict.fromkeys(recipients):
            send = domain.Send(domain.ALERT, "email", "admin", recipient, language)
            new_id = self._insert(cur, send, "alert:%s:%s" % (key, recipient), None, subject_r, text, html, None)
            if new_id:
                ids.append(new_id)
        if sms and settings["sms_enabled"] and self.sms_configured and settings["admin_phone"]:
            send = domain.Send(domain.ALERT, "sms", "admin", settings["admin_phone"], language)
            text = self.renderer.render_alert_sms(language, subject)
            new_id = self._insert(cur, send, "alert:%s:%s" % (key, send.recipient), None, None, text, None, None)
            if new_id:
                ids.append(new_id)
        if ids:
            cur.execute("SELECT pg_notify(%s, '')", (WAKE_CHANNEL,))
        return ids

    def set_alert_recipients(self, emails):
        """The active admins' own addresses, as the gateway knows them; True when the list changed."""
        with self.db.transaction() as cur:
            cur.execute("UPDATE settings SET alert_emails = %s WHERE id = 1 AND alert_emails IS DISTINCT FROM %s",
                        (emails, emails))
            return cur.rowcount == 1

    def consume_alert_event(self, consumer, event_id, subject, body, key, sms=False):
        """An admin letter an event asks for (stuck work, a payout paid after it was resolved failed, a change that
        moves money): queued in one transaction with the inbox claim."""
        with self.db.transaction() as cur:
            if not inbox.claim(cur, consumer, event_id):
                return {"duplicate": True, "queued": []}
            return {"duplicate": False, "queued": self.queue_alert_in(cur, subject, body, key, sms=sms)}

    # -- caps: no free letters or SMS for a script ----------------------------------------------------------
    def _over_cap(self, cur, send):
        """Why this send must not go out (a sentence for the log), or None. Counted under an advisory lock per
        recipient, so concurrent consumers cannot both stay under the cap."""
        if send.channel == "email" and send.audience == "customer" and self.letters_per_hour:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('notifier-letters:' || lower(%s)))", (send.recipient,))
            cur.execute("SELECT count(*) AS n FROM notifications WHERE audience = 'customer' AND channel = 'email' "
                        "AND lower(recipient) = lower(%s) AND status <> 'capped' "
                        "AND created_at > now() - interval '1 hour'", (send.recipient,))
            sent = cur.fetchone()["n"]
            if sent >= self.letters_per_hour:
                return "letter cap: %d letters to this address in the last hour" % sent
        if send.channel == "sms" and send.audience == "admin" and send.kind != SMS_SUMMARY \
                and self.admin_sms_per_window:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('notifier-admin-sms:' || %s))", (send.recipient,))
            cur.execute("SELECT count(*) AS n FROM notifications WHERE audience = 'admin' AND channel = 'sms' "
                        "AND recipient = %s AND kind <> %s AND status <> 'capped' AND created_at >= "
                        + self._window_start_sql,
                        (send.recipient, SMS_SUMMARY, self.admin_sms_window_seconds, self.admin_sms_window_seconds))
            sent = cur.fetchone()["n"]
            if sent >= self.admin_sms_per_window:
                return "admin SMS burst: %d sent in this window; summarised in one SMS at its end" % sent
        return None

    _window_start_sql = "to_timestamp(floor(extract(epoch FROM now()) / %s) * %s)"

    def _summarise_admin_sms(self, cur, send):
        """The one SMS that replaces the admin SMS held back in this window: sent when the window ends, its text
        updated with every SMS held back until then."""
        width = self.admin_sms_window_seconds
        cur.execute("SELECT " + self._window_start_sql + " + make_interval(secs => %s) AS window_end",
                    (width, width, width))
        window_end = cur.fetchone()["window_end"]
        cur.execute("SELECT count(*) AS n FROM notifications WHERE audience = 'admin' AND channel = 'sms' "
                    "AND status = 'capped' AND recipient = %s AND created_at >= %s - make_interval(secs => %s)",
                    (send.recipient, window_end, width))
        held = cur.fetchone()["n"]
        text = domain.admin_sms_summary(send.language, held, width, self.renderer.site_name)
        cur.execute(
            """INSERT INTO notifications (dedupe_key, kind, channel, audience, recipient, language, body_text,
                   status, max_attempts, next_attempt_at)
               VALUES (%s, %s, 'sms', 'admin', %s, %s, %s, 'pending', %s, %s)
               ON CONFLICT (dedupe_key) DO UPDATE SET body_text = EXCLUDED.body_text, updated_at = now()
               WHERE notifications.status = 'pending'""",
            ("sms-summary:%s:%s" % (send.recipient, window_end.isoformat()), SMS_SUMMARY, send.recipient,
             send.language, text, self.max_attempts["sms"], window_end))

    # -- consuming events ------------------------------------------------------------------------------------
    def _insert(self, cur, send, dedupe_key, order_id, subject, text, html, event_id, status="pending",
                secret_link=None):
        capped = self._over_cap(cur, send) if status == "pending" else None
        if capped:
            status, secret_link = "capped", None
            metrics.CAPPED.labels(send.channel, send.kind).inc()
        cur.execute(
            """INSERT INTO notifications (dedupe_key, order_id, kind, channel, audience, recipient, language,
                   subject, body_text, body_html, status, max_attempts, event_id, attempts, sent_at, last_error,
                   secret_link)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT DO NOTHING RETURNING id""",
            (dedupe_key, order_id, send.kind, send.channel, send.audience, send.recipient, send.language,
             subject, text, html, status, self.max_attempts[send.channel],
             None if event_id is None else str(event_id), 1 if status == "sent" else 0,
             datetime.datetime.now(datetime.timezone.utc) if status == "sent" else None, capped, secret_link))
        row = cur.fetchone()
        if row and capped and send.channel == "sms":
            self._summarise_admin_sms(cur, send)
        return row["id"] if row and not capped else None

    def consume_order_events(self, consumer, event_type, batch):
        """A batch of order events [(event_id, data)] in ONE transaction with one inbox insert and one read of
        the settings; returns one {"duplicate": bool, "queued": [ids]} per event."""
        results = []
        with self.db.transaction() as cur:
            fresh = {str(e["event_id"]) for e in
                     inbox.claim_batch(cur, consumer, [{"event_id": event_id} for event_id, _ in batch])}
            settings = self.settings(cur) if fresh else None
            woken = False
            for event_id, data in batch:
                if str(event_id) not in fresh:
                    results.append({"duplicate": True, "queued": []})
                    continue
                fresh.discard(str(event_id))
                order = plain_order(data["order"])
                queued = []
                for send in domain.decide(event_type, dict(data, order=order), settings, self.sms_configured):
                    subject, text, html = self.renderer.render_order(send.kind, send.channel, send.language,
                                                                     order, data.get("note"))
                    new_id = self._insert(cur, send,
                                          domain.order_dedupe_key(order["id"], send.kind, send.channel),
                                          order["id"], subject, text, html, event_id)
                    if new_id:
                        queued.append(new_id)
                if queued and not woken:
                    cur.execute("SELECT pg_notify(%s, '')", (WAKE_CHANNEL,))
                    woken = True
                results.append({"duplicate": False, "queued": queued})
        return results

    def consume_partner_credit(self, consumer, event_id, credit):
        """L5: a private message to the partner's in-app inbox. Delivered by this very transaction."""
        owner = "partner:%s" % credit["partner_account_id"]
        credit = dict(credit, amount=money.to_str(credit["amount"]),
                      balance=money.to_str(credit["balance"]) if credit.get("balance") is not None else None)
        language = credit.get("language") or "en"
        with self.db.transaction() as cur:
            if not inbox.claim(cur, consumer, event_id):
                return {"duplicate": True, "queued": []}
            if "L5" not in self.settings(cur)["enabled_kinds"]:
                return {"duplicate": False, "queued": []}
            subject, text, _ = self.renderer.render_partner_credit(language, credit)
            send = domain.Send("L5", "inbox", "partner", owner, language)
            new_id = self._insert(cur, send, domain.order_dedupe_key(credit["order_id"], "L5", "inbox"),
                                  credit["order_id"], subject, text, None, event_id, status="sent")
            if new_id:
                cur.execute("INSERT INTO messages (owner, kind, order_id, subject, body, notification_id) "
                            "VALUES (%s, 'L5', %s, %s, %s, %s)", (owner, credit["order_id"], subject, text, new_id))
                cur.execute("INSERT INTO notification_attempts (notification_id, attempt, outcome, detail) "
                            "VALUES (%s, 1, 'sent', 'delivered to the in-app inbox')", (new_id,))
        return {"duplicate": False, "queued": [new_id] if new_id else []}

    def consume_account_letter(self, consumer, event_id, kind, data):
        """SIGNUP / RESET (docs/partners.md): the letter with a one-time link to the account's e-mail, queued in one
        transaction with the inbox claim; once per token (dedupe key) whatever is delivered twice."""
        key = "confirm_url" if kind == "SIGNUP" else "reset_url"
        link = data.get(key)
        if not link:
            raise KeyError(key)  # a malformed event: straight to the dead-letter queue (libs/messaging.py)
        language = data.get("language") or "en"
        # The letter is stored with a placeholder; the link itself waits apart until the letter is sent
        # (domain.fill_link), so the send log never shows it.
        context = {"language": language, "site_name": self.renderer.site_name, "link": domain.LINK_PLACEHOLDER,
                   "expires": data["expires_at"].astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")}
        with self.db.transaction() as cur:
            if not inbox.claim(cur, consumer, event_id):
                return {"duplicate": True, "queued": []}
            subject, text, html = self.renderer.render(kind, "email", language, context)
            send = domain.Send(kind, "email", "customer", data["email"], language)
            new_id = self._insert(cur, send, "account:%s:%s" % (kind, data["token_id"]), None, subject, text, html,
                                  event_id, secret_link=link)
            if new_id:
                cur.execute("SELECT pg_notify(%s, '')", (WAKE_CHANNEL,))
        return {"duplicate": False, "queued": [new_id] if new_id else []}

    def consume_account_notice(self, consumer, event_id, data):
        """PASSWORD / WITHDRAWAL (docs/partners.md): a security letter to the account's address, queued in one
        transaction with the inbox claim; once per occurrence (`key`) whatever is delivered twice."""
        kind = ACCOUNT_NOTICE_KINDS[data["notice"]]
        language = data.get("language") or "en"
        withdrawal = data.get("withdrawal")
        if withdrawal:
            withdrawal = dict(withdrawal, amount=money.to_str(withdrawal["amount"]))
        expires = data.get("expires_at")
        # A new destination's confirmation link is stored apart like a sign-up's (domain.fill_link puts it in
        # when the letter is sent), so the send log never holds it in clear.
        link = data.get("link")
        context = {"language": language, "site_name": self.renderer.site_name, "notice": data["notice"],
                   "link": domain.LINK_PLACEHOLDER if link else None, "withdrawal": withdrawal,
                   "expires": expires.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
                   if expires else None}
        with self.db.transaction() as cur:
            if not inbox.claim(cur, consumer, event_id):
                return {"duplicate": True, "queued": []}
            subject, text, html = self.renderer.render(kind, "email", language, context)
            send = domain.Send(kind, "email", "customer", data["email"], language)
            new_id = self._insert(cur, send, "account:%s:%s" % (kind, data["key"]), None, subject, text, html,
                                  event_id, secret_link=link)
            if new_id:
                cur.execute("SELECT pg_notify(%s, '')", (WAKE_CHANNEL,))
        return {"duplicate": False, "queued": [new_id] if new_id else []}

    # -- the send log ----------------------------------------------------------------------------------------
    def list_notifications(self, filters):
        where, params = [], []
        for key in ("order_id", "kind", "channel", "status", "audience"):
            if filters.get(key) not in (None, ""):
                where.append("%s = %%s" % key)
                params.append(filters[key])
        if filters.get("recipient"):
            where.append("lower(recipient) = lower(%s)")
            params.append(filters["recipient"])
        if filters.get("cursor"):
            where.append("id < %s")
            params.append(int(filters["cursor"]))
        limit = max(1, min(int(filters.get("limit") or 50), MAX_LIST))
        sql = "SELECT * FROM notifications" + (" WHERE " + " AND ".join(where) if where else "") + \
            " ORDER BY id DESC LIMIT %s"
        rows = self.db.fetchall(sql, params + [limit + 1])
        items = [notification_to_wire(r, with_html=False) for r in rows[:limit]]
        next_cursor = str(rows[limit - 1]["id"]) if len(rows) > limit else None
        return {"items": items, "next_cursor": next_cursor}

    def get_notification(self, notification_id):
        row = self.db.fetchone("SELECT * FROM notifications WHERE id = %s", (notification_id,))
        if row is None:
            raise errors.NotFound("notification not found")
        wire = notification_to_wire(row)
        wire["attempts_log"] = [attempt_to_wire(a) for a in self.db.fetchall(
            "SELECT * FROM notification_attempts WHERE notification_id = %s ORDER BY id", (notification_id,))]
        return wire

    def resend(self, notification_id, actor):
        """An operator sends a failed notification again (compare-and-set: only `failed` moves)."""
        with self.db.transaction() as cur:
            cur.execute("UPDATE notifications SET status = 'pending', attempts = 0, next_attempt_at = now(), "
                        "last_error = NULL, resends = resends + 1, updated_at = now() "
                        "WHERE id = %s AND status = 'failed' AND channel <> 'inbox' RETURNING *",
                        (notification_id,))
            row = cur.fetchone()
            if row is None:
                cur.execute("SELECT status FROM notifications WHERE id = %s", (notification_id,))
                current = cur.fetchone()
                if current is None:
                    raise errors.NotFound("notification not found")
                raise errors.Conflict("only a failed notification can be resent (it is %s)" % current["status"],
                                      {"status": [current["status"]]})
            cur.execute("INSERT INTO notification_attempts (notification_id, attempt, outcome, detail, actor) "
                        "VALUES (%s, 0, 'resend', %s, %s)",
                        (row["id"], "resend #%d from %s" % (row["resends"], (actor or {}).get("ip") or "-"),
                         actor_name(actor)))
            cur.execute("SELECT pg_notify(%s, '')", (WAKE_CHANNEL,))
        return notification_to_wire(row)

    # -- the sender ------------------------------------------------------------------------------------------
    def claim(self, limit, lease_seconds):
        """Take up to `limit` due rows and commit them as `sending` before any provider call.

        A row still `sending` after its lease belonged to a sender that died mid-send: it is taken again and
        flagged outcome_unknown (the provider may have accepted it)."""
        with self.db.transaction() as cur:
            cur.execute(
                """WITH due AS (
                       SELECT id FROM notifications
                        WHERE channel <> 'inbox'
                          AND ((status = 'pending' AND next_attempt_at <= now())
                               OR (status = 'sending' AND lease_until < now()))
                        ORDER BY next_attempt_at, id
                        LIMIT %s
                        FOR UPDATE SKIP LOCKED)
                   UPDATE notifications n
                      SET status = 'sending', attempts = n.attempts + 1,
                          outcome_unknown = n.outcome_unknown OR n.status = 'sending',
                          lease_until = now() + make_interval(secs => %s), updated_at = now()
                     FROM due WHERE n.id = due.id
                   RETURNING n.*""", (limit, lease_seconds))
            return cur.fetchall()

    def _fenced(self, cur, row, sets, params, outcome, detail):
        """Update the row only if this sender still holds it (status 'sending' at the attempt it claimed), and
        log the attempt, in one round trip. Returns the updated row, or None if the lease was lost."""
        cur.execute("WITH u AS (UPDATE notifications SET " + sets + ", lease_until = NULL, updated_at = now() "
                    "WHERE id = %(id)s AND status = 'sending' AND attempts = %(attempts)s RETURNING *), "
                    "a AS (INSERT INTO notification_attempts (notification_id, attempt, outcome, detail) "
                    "SELECT id, attempts, %(outcome)s, %(detail)s FROM u) SELECT * FROM u",
                    dict(params, id=row["id"], attempts=row["attempts"], outcome=outcome,
                         detail=(detail or "")[:1000]))
        return cur.fetchone()

    def mark_sent(self, row, provider_id, provider_status=None, detail=None):
        with self.db.transaction() as cur:
            status = provider_status
            if row["channel"] == "sms" and provider_id:
                # A status callback can beat this commit: apply the furthest status Twilio already told us.
                cur.execute("SELECT message_status FROM sms_callbacks WHERE message_sid = %s ORDER BY received_at",
                            (provider_id,))
                for cb in cur.fetchall():
                    if domain.status_moves_forward(status, cb["message_status"]):
                        status = cb["message_status"]
                cur.execute("UPDATE sms_callbacks SET applied = true WHERE message_sid = %s", (provider_id,))
            return self._fenced(cur, row, "status = 'sent', sent_at = now(), provider_id = %(pid)s, "
                                          "secret_link = NULL, "
                                          "provider_status = %(pstatus)s, provider_status_at = now(), "
                                          "last_error = NULL, outcome_unknown = false",
                                {"pid": provider_id, "pstatus": status}, "sent", detail or provider_id)

    def mark_retry(self, row, error, delay_seconds, outcome_unknown=False):
        with self.db.transaction() as cur:
            return self._fenced(cur, row, "status = 'pending', last_error = %(error)s, "
                                          "next_attempt_at = now() + make_interval(secs => %(delay)s), "
                                          "outcome_unknown = %(unknown)s",
                                {"error": error[:1000], "delay": delay_seconds, "unknown": outcome_unknown},
                                "retry", "%s; next in %.1fs" % (error, delay_seconds))

    def mark_failed(self, row, error, outcome_unknown=False):
        with self.db.transaction() as cur:
            return self._fenced(cur, row, "status = 'failed', last_error = %(error)s, "
                                          "outcome_unknown = %(unknown)s",
                                {"error": error[:1000], "unknown": outcome_unknown}, "failed", error)

    def status_counts(self):
        rows = self.db.fetchall("SELECT channel, status, count(*) AS n FROM notifications WHERE status <> 'sent' "
                                "GROUP BY channel, status")
        oldest = self.db.fetchone("SELECT extract(epoch FROM now() - min(created_at)) AS age FROM notifications "
                                  "WHERE status IN ('pending', 'sending')")
        return rows, float(oldest["age"] or 0)

    # -- Twilio status callbacks -----------------------------------------------------------------------------
    def sms_status(self, message_sid, message_status, error_code=None):
        """Record a verified callback once per (MessageSid, MessageStatus); move the status only forward.
        Returns 'applied', 'duplicate', 'stale' (older than what we have) or 'unknown' (sid not ours yet)."""
        with self.db.transaction() as cur:
            cur.execute("INSERT INTO sms_callbacks (message_sid, message_status, error_code, applied) "
                        "VALUES (%s, %s, %s, false) ON CONFLICT DO NOTHING", (message_sid, message_status,
                                                                            error_code))
            if cur.rowcount == 0:
                return "duplicate"
            cur.execute("SELECT * FROM notifications WHERE provider_id = %s AND channel = 'sms' FOR UPDATE",
                        (message_sid,))
            row = cur.fetchone()
            if row is None:
                return "unknown"
            if not domain.status_moves_forward(row["provider_status"], message_status):
                return "stale"
            error = None
            if message_status in ("failed", "undelivered"):
                error = "Twilio: %s%s" % (message_status, " (error %s)" % error_code if error_code else "")
            cur.execute("UPDATE notifications SET provider_status = %s, provider_status_at = now(), "
                        "last_error = COALESCE(%s, last_error), updated_at = now() WHERE id = %s",
                        (message_status, error, row["id"]))
            cur.execute("UPDATE sms_callbacks SET applied = true WHERE message_sid = %s AND message_status = %s",
                        (message_sid, message_status))
            cur.execute("INSERT INTO notification_attempts (notification_id, attempt, outcome, detail) "
                        "VALUES (%s, %s, 'status', %s)", (row["id"], row["attempts"],
                                                           message_status + (" %s" % error_code if error_code
                                                                             else "")))
            return "applied"

    # -- private messages ------------------------------------------------------------------------------------
    def list_messages(self, owner, unread_only=False, limit=50, cursor=None):
        where, params = ["owner = %s"], [owner]
        if unread_only:
            where.append("read_at IS NULL")
        if cursor:
            where.append("id < %s")
            params.append(int(cursor))
        limit = max(1, min(int(limit or 50), MAX_LIST))
        rows = self.db.fetchall("SELECT * FROM messages WHERE " + " AND ".join(where) +
                                " ORDER BY id DESC LIMIT %s", params + [limit + 1])
        unread = self.db.fetchone("SELECT count(*) AS n FROM messages WHERE owner = %s AND read_at IS NULL",
                                  (owner,))["n"]
        return {"items": [message_to_wire(r) for r in rows[:limit]], "unread": unread,
                "next_cursor": str(rows[limit - 1]["id"]) if len(rows) > limit else None}

    def mark_read(self, owner, message_ids):
        """Marks the owner's messages read (others' ids are ignored); idempotent. Returns how many changed."""
        with self.db.transaction() as cur:
            cur.execute("UPDATE messages SET read_at = now() WHERE owner = %s AND id = ANY(%s) AND read_at IS NULL",
                        (owner, [int(i) for i in message_ids]))
            return cur.rowcount

