-- +goose Up
-- An app's webhook endpoints, as SQLite's 0008.
CREATE TABLE webhook_endpoints (
    id                  text PRIMARY KEY,
    app_id              text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    url                 text NOT NULL,
    events              text NOT NULL,
    secret              text NOT NULL,
    previous_secret     text,
    previous_expires_at bigint,
    disabled_at         bigint,
    created_at          bigint NOT NULL
);
CREATE INDEX webhook_endpoints_app ON webhook_endpoints (app_id, created_at);
