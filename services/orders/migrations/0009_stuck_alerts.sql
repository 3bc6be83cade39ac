-- Stuck work (docs/architecture.md, "Stuck work"): which stuck items the admin has been told of, so a check after a
-- restart (or on a second instance) does not mail them again. A row goes when its item is no longer stuck.
-- depends: 0008_idempotency_scope
CREATE TABLE stuck_alerts (
    kind        text        NOT NULL,
    item_id     bigint      NOT NULL,
    alerted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, item_id)
);
