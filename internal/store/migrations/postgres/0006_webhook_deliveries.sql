-- +goose Up
-- The webhook outbox, as SQLite's 0009.
CREATE TABLE webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         text NOT NULL,
    endpoint_id      text NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_type       text NOT NULL,
    payload          text NOT NULL,
    status           text NOT NULL DEFAULT 'pending',
    attempts         integer NOT NULL DEFAULT 0,
    response_code    integer NOT NULL DEFAULT 0,
    response_excerpt text NOT NULL DEFAULT '',
    error            text NOT NULL DEFAULT '',
    created_at       bigint NOT NULL,
    attempted_at     bigint,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_waiting ON webhook_deliveries (status) WHERE status IN ('pending', 'retrying');
ALTER TABLE webhook_endpoints ADD COLUMN failing_since bigint;
ALTER TABLE webhook_endpoints ADD COLUMN disabled_reason text NOT NULL DEFAULT '';
