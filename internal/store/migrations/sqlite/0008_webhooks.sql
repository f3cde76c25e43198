-- +goose Up
-- An app's webhook endpoints. The secret signs what is sent (Standard
-- Webhooks); it has to be read back, so it is sealed with the master key
-- like identity secrets. During a rotation the previous one signs too,
-- until previous_expires_at.
CREATE TABLE webhook_endpoints (
    id                  TEXT PRIMARY KEY,
    app_id              TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    url                 TEXT NOT NULL,
    events              TEXT NOT NULL,
    secret              TEXT NOT NULL,
    previous_secret     TEXT,
    previous_expires_at INTEGER,
    disabled_at         INTEGER,
    created_at          INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_app ON webhook_endpoints (app_id, created_at);
