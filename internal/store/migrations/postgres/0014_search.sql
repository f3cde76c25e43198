-- +goose Up
-- Full-text search, as SQLite's 0016: GIN indexes over the same
-- expressions the search uses (search.go). translate() splits e-mails,
-- URLs and ids into words, as SQLite's tokenizer does.
CREATE INDEX messages_search ON messages USING gin (to_tsvector('simple', translate(body, '@._-+/:', '       ')));
CREATE INDEX subjects_search ON subjects USING gin (to_tsvector('simple', translate(name || ' ' || email || ' ' || user_id, '@._-+/:', '       ')));
