-- notifier schema: security alerts go to every admin (docs/security.md). The gateway keeps this list of the active
-- admins' own addresses current (RPC set_alert_recipients); it is no setting of the panel and cannot be cleared there.
ALTER TABLE settings ADD COLUMN alert_emails text[] NOT NULL DEFAULT '{}';
