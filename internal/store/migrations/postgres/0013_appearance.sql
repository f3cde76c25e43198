-- +goose Up
-- How an app's widget looks, and refused origins, as SQLite's 0015.
ALTER TABLE apps ADD COLUMN color text NOT NULL DEFAULT '#2457d6';
ALTER TABLE apps ADD COLUMN position text NOT NULL DEFAULT 'right';
ALTER TABLE apps ADD COLUMN launcher_label text NOT NULL DEFAULT '';
ALTER TABLE apps ADD COLUMN team_name text NOT NULL DEFAULT '';
ALTER TABLE apps ADD COLUMN locale text NOT NULL DEFAULT 'en';
ALTER TABLE apps ADD COLUMN avatar_hash text NOT NULL DEFAULT '';
CREATE TABLE app_avatars (
    app_id text PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    type   text NOT NULL,
    data   bytea NOT NULL
);
CREATE TABLE refused_origins (
    app_id   text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    origin   text NOT NULL,
    count    bigint NOT NULL,
    last_at  bigint NOT NULL,
    PRIMARY KEY (app_id, origin)
);
-- How far a conversation's messages reached an agent's open inbox, for
-- the widget's "delivered".
ALTER TABLE conversations ADD COLUMN agent_delivered_seq bigint NOT NULL DEFAULT 0;
-- The conversations with user messages no agent's inbox has had yet:
-- what an agent's arrival marks delivered (AgentPresent), found without
-- visiting the app's others.
CREATE INDEX conversations_undelivered ON conversations (app_id) WHERE agent_delivered_seq < last_seq;
