-- +goose Up
-- As SQLite's 0006: the dashboard's sign-in throttles, shared by every node.
CREATE TABLE throttle_buckets (
    key        text PRIMARY KEY,
    tokens     double precision NOT NULL,
    updated_at bigint NOT NULL,
    full_at    bigint NOT NULL
);
CREATE INDEX throttle_buckets_full ON throttle_buckets (full_at);
