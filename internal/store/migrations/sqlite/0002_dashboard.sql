-- +goose Up
-- Site owners sign in to the dashboard. Emails are stored trimmed and
-- lower-cased so UNIQUE is case-insensitive in effect.
CREATE TABLE owners (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Dashboard sign-ins; the cookie's token is stored only as a hash.
CREATE TABLE owner_sessions (
    token_hash   TEXT PRIMARY KEY,
    owner_id     TEXT NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX owner_sessions_owner ON owner_sessions (owner_id);

CREATE TABLE app_members (
    app_id     TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    owner_id   TEXT NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, owner_id)
);
CREATE INDEX app_members_owner ON app_members (owner_id);

-- Identity secrets move out of apps so a rotated secret can keep verifying
-- for a while. The row with retired_at NULL is the current one; a retired
-- one verifies until expires_at (NULL: until it is revoked, i.e. deleted).
CREATE TABLE identity_secrets (
    id         TEXT PRIMARY KEY,
    app_id     TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    secret     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER,
    expires_at INTEGER
);
CREATE UNIQUE INDEX identity_secrets_current ON identity_secrets (app_id) WHERE retired_at IS NULL;
CREATE INDEX identity_secrets_app ON identity_secrets (app_id, created_at);

INSERT INTO identity_secrets (id, app_id, secret, created_at)
    SELECT 'isk_' || lower(hex(randomblob(10))), id, identity_secret, created_at FROM apps;
ALTER TABLE apps DROP COLUMN identity_secret;

-- Sessions created per app, UTC day (unix millis / 86400000) and subject
-- kind: enough to tell an owner what share of recent sessions was verified
-- without keeping expired sessions around.
CREATE TABLE session_counts (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    day    INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    n      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, day, kind)
) WITHOUT ROWID;

-- The agents' shared read mark. Existing conversations count as read up to
-- the last agent reply, as AddAgentMessage does from now on.
ALTER TABLE conversations ADD COLUMN agent_read_seq INTEGER NOT NULL DEFAULT 0;
UPDATE conversations SET agent_read_seq = coalesce(
    (SELECT max(seq) FROM messages m WHERE m.conversation_id = conversations.id AND m.author = 'agent'), 0);

ALTER TABLE subjects ADD COLUMN last_page_url TEXT NOT NULL DEFAULT '';
