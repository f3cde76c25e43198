-- +goose Up
-- Links mailed to dashboard owners: a password reset (owner_id), or an
-- invitation to join an app (app_id) for an address with no account yet.
-- Only the token's hash is kept; a link works once, until expires_at.
CREATE TABLE owner_links (
    token_hash TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('reset', 'invite')),
    email      TEXT NOT NULL,
    owner_id   TEXT REFERENCES owners(id) ON DELETE CASCADE,
    app_id     TEXT REFERENCES apps(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX owner_links_email ON owner_links (email, kind);
