-- +goose Up
-- Ends of dashboard access, as SQLite's 0007.
ALTER TABLE session_ends ADD COLUMN owner_id text;
