-- gateway schema: step-up (docs/security.md, "Step-up and alerts"). A change that moves money asks again for the
-- password or a fresh one-time code; the answer holds for a few minutes for that one session or token only.
ALTER TABLE sessions   ADD COLUMN stepped_up_at timestamptz;
ALTER TABLE api_tokens ADD COLUMN stepped_up_at timestamptz;
