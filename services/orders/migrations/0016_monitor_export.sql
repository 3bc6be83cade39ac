-- The monitors' rates file (GET /rates.xml, GET /rates.json; docs/monitors.md), kept rendered in one row so a
-- monitor polling every few seconds costs a comparison of versions, not a query over every direction:
-- - version grows by one each time the rendered document changes (the gateway's workers keep the document in
--   memory and fetch it again only when the version differs); rendered_at is when it last changed (the
--   Last-Modified of the answer);
-- - maintenance: the exchanger's switch that empties the file (`<rates/>`), with who set it and when (the change
--   is also in audit_log).
-- depends: 0011_direction_rate_state
CREATE TABLE monitor_export (
    id integer PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL DEFAULT 0,
    rendered_at timestamptz NOT NULL DEFAULT now(),
    items integer NOT NULL DEFAULT 0,
    xml text NOT NULL DEFAULT '',
    json text NOT NULL DEFAULT '',
    maintenance boolean NOT NULL DEFAULT false,
    maintenance_changed_at timestamptz,
    maintenance_changed_by text
);
INSERT INTO monitor_export (id) VALUES (1);
