-- +goose Up
-- Identity secrets are sealed with a master key kept outside the database
-- from now on (Open seals the ones still in plaintext right after this
-- runs). This row holds a value sealed with that key the first time the
-- database is opened with one, so a wrong key is refused at start instead
-- of turning up later as secrets that do not open.
CREATE TABLE master_key_check (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    sealed     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
