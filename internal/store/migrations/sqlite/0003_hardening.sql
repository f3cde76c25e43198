-- +goose Up
-- App settings for who may chat: require_jwt refuses plain user_hash
-- proofs; refuse_anonymous refuses visitors without an identity. A disabled
-- app keeps its data, but its widget starts no sessions.
ALTER TABLE apps ADD COLUMN require_jwt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE apps ADD COLUMN refuse_anonymous INTEGER NOT NULL DEFAULT 0;
ALTER TABLE apps ADD COLUMN disabled_at INTEGER;

-- The identity secret that vouched for a session, so that revoking the
-- secret ends the sessions it made. NULL for visitors and unverified claims.
ALTER TABLE sessions ADD COLUMN secret_id TEXT;
CREATE INDEX sessions_secret ON sessions (secret_id) WHERE secret_id IS NOT NULL;
CREATE INDEX sessions_app ON sessions (app_id);

-- Whether the subject's email and name came signed (in an identity JWT)
-- rather than as plain hints from the page.
ALTER TABLE subjects ADD COLUMN email_signed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subjects ADD COLUMN name_signed INTEGER NOT NULL DEFAULT 0;

-- Single-use JWT ids, kept until the token has expired anyway.
CREATE TABLE jwt_ids (
    app_id     TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, jti)
) WITHOUT ROWID;
CREATE INDEX jwt_ids_expires ON jwt_ids (expires_at);

-- Sessions ended before their expiry (secret revoked, app disabled, the
-- widget shut down). The server polls this log to close their sockets,
-- which also covers ends made by another process such as the CLI. A row
-- without token_hash ends every session of the app.
CREATE TABLE session_ends (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id     TEXT NOT NULL,
    token_hash TEXT,
    reason     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
