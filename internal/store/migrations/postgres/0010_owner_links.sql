-- +goose Up
-- Links mailed to dashboard owners, as SQLite's 0012.
CREATE TABLE owner_links (
    token_hash text PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('reset', 'invite')),
    email      text NOT NULL,
    owner_id   text REFERENCES owners(id) ON DELETE CASCADE,
    app_id     text REFERENCES apps(id) ON DELETE CASCADE,
    expires_at bigint NOT NULL,
    used_at    bigint,
    created_at bigint NOT NULL
);
CREATE INDEX owner_links_email ON owner_links (email, kind);
