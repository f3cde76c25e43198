-- +goose Up
-- Apps are tenants: one site owner's site. The identity secret is read back
-- to verify user hashes; the API key is kept only as a SHA-256 hash.
CREATE TABLE apps (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    identity_mode   TEXT NOT NULL CHECK (identity_mode IN ('enforced', 'monitor')),
    identity_secret TEXT NOT NULL,
    api_key_hash    TEXT NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL
);

CREATE TABLE app_origins (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    origin TEXT NOT NULL,
    PRIMARY KEY (app_id, origin)
);

-- A subject is whoever a session speaks for. kind keeps verified users,
-- unverified claims and anonymous visitors apart even when they share a
-- user_id or email: lookup_key is only unique within (app, kind).
CREATE TABLE subjects (
    id           TEXT PRIMARY KEY,
    app_id       TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('user', 'unverified', 'visitor')),
    lookup_key   TEXT NOT NULL,
    user_id      TEXT NOT NULL DEFAULT '',
    email        TEXT NOT NULL DEFAULT '',
    name         TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    UNIQUE (app_id, kind, lookup_key)
);

-- Visitor tokens are minted by Parley and kept by the widget in the host
-- page's storage; only their hashes are stored.
CREATE TABLE visitor_tokens (
    app_id     TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, token_hash)
);

CREATE TABLE sessions (
    token_hash    TEXT PRIMARY KEY,
    app_id        TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    subject_id    TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    parent_origin TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE conversations (
    id              TEXT PRIMARY KEY,
    app_id          TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    subject_id      TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_at      INTEGER NOT NULL,
    last_message_at INTEGER NOT NULL,
    last_seq        INTEGER NOT NULL DEFAULT 0,
    user_read_seq   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX conversations_subject ON conversations (subject_id, last_message_at DESC);
CREATE INDEX conversations_app ON conversations (app_id, last_message_at DESC);

-- seq numbers a conversation's messages 1, 2, 3…; clients catch up with
-- "everything after seq N". A user's client_msg_id is unique per author so
-- a resend after a dropped ack is answered with the stored message.
CREATE TABLE messages (
    id                TEXT PRIMARY KEY,
    conversation_id   TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq               INTEGER NOT NULL,
    author            TEXT NOT NULL CHECK (author IN ('user', 'agent')),
    author_subject_id TEXT REFERENCES subjects(id) ON DELETE CASCADE,
    author_name       TEXT NOT NULL DEFAULT '',
    client_msg_id     TEXT,
    body              TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    UNIQUE (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_client_id ON messages (author_subject_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
