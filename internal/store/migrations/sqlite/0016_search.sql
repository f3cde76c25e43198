-- +goose Up
-- Full-text search of an app's conversations: by what was written in
-- them, and by the user's name, e-mail and user_id. FTS5 tables that keep
-- their own copy of the text, filled by triggers, so the index never
-- depends on the rowids of the tables it follows (VACUUM may renumber
-- those). Messages are never edited; their entries go with their
-- conversation (a scan, for what Parley never does yet).
CREATE VIRTUAL TABLE search_messages USING fts5(body, conversation_id UNINDEXED, app_id UNINDEXED, tokenize = 'unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE search_subjects USING fts5(words, subject_id UNINDEXED, app_id UNINDEXED, tokenize = 'unicode61 remove_diacritics 2');
-- Each subject's entry by a rowid of its own: an INTEGER PRIMARY KEY,
-- which VACUUM keeps, so a rename finds its entry by rowid, not by a scan.
CREATE TABLE search_subject_rows (
    id         INTEGER PRIMARY KEY,
    subject_id TEXT NOT NULL UNIQUE
);
INSERT INTO search_messages (body, conversation_id, app_id)
    SELECT m.body, m.conversation_id, c.app_id FROM messages m JOIN conversations c ON c.id = m.conversation_id;
INSERT INTO search_subject_rows (subject_id) SELECT id FROM subjects;
INSERT INTO search_subjects (rowid, words, subject_id, app_id)
    SELECT r.id, s.name || ' ' || s.email || ' ' || s.user_id, s.id, s.app_id FROM subjects s JOIN search_subject_rows r ON r.subject_id = s.id;
-- +goose StatementBegin
CREATE TRIGGER search_messages_insert AFTER INSERT ON messages BEGIN
    INSERT INTO search_messages (body, conversation_id, app_id)
        SELECT new.body, new.conversation_id, app_id FROM conversations WHERE id = new.conversation_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER search_subjects_insert AFTER INSERT ON subjects BEGIN
    INSERT INTO search_subject_rows (subject_id) VALUES (new.id);
    INSERT INTO search_subjects (rowid, words, subject_id, app_id)
        VALUES ((SELECT id FROM search_subject_rows WHERE subject_id = new.id), new.name || ' ' || new.email || ' ' || new.user_id, new.id, new.app_id);
END;
-- +goose StatementEnd
-- A session's upsert names these columns every time; only a change
-- rewrites the entry.
-- +goose StatementBegin
CREATE TRIGGER search_subjects_update AFTER UPDATE OF name, email, user_id ON subjects
WHEN old.name IS NOT new.name OR old.email IS NOT new.email OR old.user_id IS NOT new.user_id BEGIN
    DELETE FROM search_subjects WHERE rowid = (SELECT id FROM search_subject_rows WHERE subject_id = old.id);
    INSERT INTO search_subjects (rowid, words, subject_id, app_id)
        VALUES ((SELECT id FROM search_subject_rows WHERE subject_id = new.id), new.name || ' ' || new.email || ' ' || new.user_id, new.id, new.app_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER search_conversations_delete AFTER DELETE ON conversations BEGIN
    DELETE FROM search_messages WHERE conversation_id = old.id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER search_subjects_delete AFTER DELETE ON subjects BEGIN
    DELETE FROM search_subjects WHERE rowid = (SELECT id FROM search_subject_rows WHERE subject_id = old.id);
    DELETE FROM search_subject_rows WHERE subject_id = old.id;
END;
-- +goose StatementEnd
