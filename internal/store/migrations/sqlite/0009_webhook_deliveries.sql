-- +goose Up
-- What is sent to webhook endpoints: one row per event and endpoint,
-- written in the transaction that caused the event (the outbox), beside
-- the River job that delivers it. The row is the delivery as owners see
-- it; River keeps only the schedule. AUTOINCREMENT because a job names
-- its row by id, and a removed endpoint's rows must never lend their ids
-- to new ones.
CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id         TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    response_code    INTEGER NOT NULL DEFAULT 0,
    response_excerpt TEXT NOT NULL DEFAULT '',
    error            TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    attempted_at     INTEGER,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_waiting ON webhook_deliveries (status) WHERE status IN ('pending', 'retrying');
-- An endpoint that keeps failing is disabled after a while: failing_since
-- is when its current run of failures began.
ALTER TABLE webhook_endpoints ADD COLUMN failing_since INTEGER;
ALTER TABLE webhook_endpoints ADD COLUMN disabled_reason TEXT NOT NULL DEFAULT '';
