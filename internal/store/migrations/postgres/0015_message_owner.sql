-- +goose Up
-- Which owner wrote an agent message, as SQLite's 0017.
ALTER TABLE messages ADD COLUMN author_owner_id text REFERENCES owners(id) ON DELETE SET NULL;
