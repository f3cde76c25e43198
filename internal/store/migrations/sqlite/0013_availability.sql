-- +goose Up
-- When an app's team is usually there, and what the widget says about it.
-- business_hours is hours.Week's stored form ('' is always open).
ALTER TABLE apps ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
ALTER TABLE apps ADD COLUMN business_hours TEXT NOT NULL DEFAULT '';
ALTER TABLE apps ADD COLUMN greeting TEXT NOT NULL DEFAULT '';
ALTER TABLE apps ADD COLUMN away_message TEXT NOT NULL DEFAULT '';
ALTER TABLE apps ADD COLUMN reply_time TEXT NOT NULL DEFAULT '';
-- Agents with the inbox open, per node, until expires_at: each node
-- refreshes its own rows while the sockets stay open, so a node that dies
-- stops counting a minute later.
CREATE TABLE agent_presence (
    app_id     TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    owner_id   TEXT NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
    node       TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, owner_id, node)
);
