-- +goose Up
-- Token buckets kept in the database, so that every process sharing it
-- (a second node, the CLI) counts the same attempts: the dashboard's
-- sign-in throttles. tokens is what was left at updated_at (unix millis);
-- the bucket refills from there. A row whose bucket is full again is
-- deleted by the hourly housekeeping, as if it had never been.
CREATE TABLE throttle_buckets (
    key        TEXT PRIMARY KEY,
    tokens     REAL NOT NULL,
    updated_at INTEGER NOT NULL,
    full_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX throttle_buckets_full ON throttle_buckets (full_at);
