-- gateway schema: step-up (docs/security.md, "Step-up and alerts"). A change that moves money asks again for the
-- password or a fresh one-time code; the answer holds for a few minutes for that one session or token only.
ALTER TABLE sessions   ADD COLUMN stepped_up_at timestamptz;
ALTER TABLE api_tokens ADD COLUMN stepped_up_at timestamptz;
-- Wrong step-up answers of one staff member in the lockout window (gateway/security/stepup.py recent_failures).
CREATE INDEX audit_log_step_up ON audit_log (actor, created_at) WHERE action = 'step_up';
-- Each admin's own address: every security alert goes to every active admin as well as to the admin address of the
-- notification settings (the gateway hands the list to the notifier, gateway/security/alerts.py).
ALTER TABLE staff ADD COLUMN email text;
