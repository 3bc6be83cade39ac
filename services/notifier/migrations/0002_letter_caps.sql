-- No free letters or SMS for a script (docs/security.md, "Throttles and lockout"):
-- - 'capped': a letter over the cap of letters to one customer address per hour, or an admin SMS over the burst
--   limit (then one summary SMS goes out at the end of the window instead). Kept in the log, never sent.
-- - secret_link: the one-time link of a sign-up or reset letter, kept apart from the body (which holds a
--   placeholder) and erased once the letter is sent or given up, so the log never shows a usable link.
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'capped'));
ALTER TABLE notifications ADD COLUMN secret_link text;
-- the cap counts a recipient's recent letters
CREATE INDEX notifications_recipient_recent ON notifications (lower(recipient), created_at)
    WHERE audience = 'customer' AND channel = 'email';
CREATE INDEX notifications_admin_sms_recent ON notifications (created_at) WHERE audience = 'admin' AND channel = 'sms';
