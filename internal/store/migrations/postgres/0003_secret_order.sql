-- +goose Up
-- Secrets made in the same millisecond are ordered as they were written:
-- SQLite's rowid does that, and this column, of the same name, does it
-- here, so that one ORDER BY serves both databases.
ALTER TABLE identity_secrets ADD COLUMN rowid bigint GENERATED ALWAYS AS IDENTITY;
