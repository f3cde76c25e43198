-- +goose Up
-- Which owner wrote an agent message from the dashboard (NULL for the
-- server API's replies and for users' messages), so the inbox says "You"
-- for exactly that owner's replies, whatever the names.
ALTER TABLE messages ADD COLUMN author_owner_id TEXT REFERENCES owners(id) ON DELETE SET NULL;
