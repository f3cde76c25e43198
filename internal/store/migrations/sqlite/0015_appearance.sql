-- +goose Up
-- How an app's widget looks: its colour, which corner, the launcher's
-- label, the team's name and picture, and the language it speaks when
-- neither the page nor the browser says. avatar_hash names the picture
-- in app_avatars ('' for none) and changes with it, so its URL can be
-- cached for good.
ALTER TABLE apps ADD COLUMN color TEXT NOT NULL DEFAULT '#2457d6';
ALTER TABLE apps ADD COLUMN position TEXT NOT NULL DEFAULT 'right';
ALTER TABLE apps ADD COLUMN launcher_label TEXT NOT NULL DEFAULT '';
ALTER TABLE apps ADD COLUMN team_name TEXT NOT NULL DEFAULT '';
ALTER TABLE apps ADD COLUMN locale TEXT NOT NULL DEFAULT 'en';
ALTER TABLE apps ADD COLUMN avatar_hash TEXT NOT NULL DEFAULT '';
CREATE TABLE app_avatars (
    app_id TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    type   TEXT NOT NULL,
    data   BLOB NOT NULL
);
-- Origins whose pages asked for the widget and were refused, so owners
-- can see (and add) the one they forgot. At most a few per app are kept.
CREATE TABLE refused_origins (
    app_id   TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    origin   TEXT NOT NULL,
    count    INTEGER NOT NULL,
    last_at  INTEGER NOT NULL,
    PRIMARY KEY (app_id, origin)
);
-- How far a conversation's messages reached an agent's open inbox, for
-- the widget's "delivered".
ALTER TABLE conversations ADD COLUMN agent_delivered_seq INTEGER NOT NULL DEFAULT 0;
-- The conversations with user messages no agent's inbox has had yet:
-- what an agent's arrival marks delivered (AgentPresent), found without
-- visiting the app's others.
CREATE INDEX conversations_undelivered ON conversations (app_id) WHERE agent_delivered_seq < last_seq;
