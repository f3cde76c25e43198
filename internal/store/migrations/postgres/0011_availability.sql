-- +goose Up
-- Business hours and who is online, as SQLite's 0013.
ALTER TABLE apps ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC';
ALTER TABLE apps ADD COLUMN business_hours text NOT NULL DEFAULT '';
ALTER TABLE apps ADD COLUMN greeting text NOT NULL DEFAULT '';
ALTER TABLE apps ADD COLUMN away_message text NOT NULL DEFAULT '';
ALTER TABLE apps ADD COLUMN reply_time text NOT NULL DEFAULT '';
CREATE TABLE agent_presence (
    app_id     text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    owner_id   text NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
    node       text NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (app_id, owner_id, node)
);
