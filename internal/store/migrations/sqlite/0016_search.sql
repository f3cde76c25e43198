-- +goose Up
-- Full-text search of an app's conversations: by what their users wrote,
-- and by the user's name, e-mail and user_id. FTS5 tables that keep their
-- own copy of the text, filled by triggers, so the index never depends on
-- the rowids of the tables it follows (VACUUM may renumber those).
CREATE VIRTUAL TABLE search_messages USING fts5(body, conversation_id UNINDEXED, app_id UNINDEXED, tokenize = 'unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE search_subjects USING fts5(words, subject_id UNINDEXED, app_id UNINDEXED, tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO search_messages (body, conversation_id, app_id)
    SELECT m.body, m.conversation_id, c.app_id FROM messages m JOIN conversations c ON c.id = m.conversation_id;
INSERT INTO search_subjects (words, subject_id, app_id)
    SELECT name || ' ' || email || ' ' || user_id, id, app_id FROM subjects;
-- +goose StatementBegin
CREATE TRIGGER search_messages_insert AFTER INSERT ON messages BEGIN
    INSERT INTO search_messages (body, conversation_id, app_id)
        SELECT new.body, new.conversation_id, app_id FROM conversations WHERE id = new.conversation_id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER search_subjects_insert AFTER INSERT ON subjects BEGIN
    INSERT INTO search_subjects (words, subject_id, app_id) VALUES (new.name || ' ' || new.email || ' ' || new.user_id, new.id, new.app_id);
END;
-- +goose StatementEnd
-- A session's upsert names these columns every time; only a change
-- rewrites the entry.
-- +goose StatementBegin
CREATE TRIGGER search_subjects_update AFTER UPDATE OF name, email, user_id ON subjects
WHEN old.name IS NOT new.name OR old.email IS NOT new.email OR old.user_id IS NOT new.user_id BEGIN
    DELETE FROM search_subjects WHERE subject_id = old.id;
    INSERT INTO search_subjects (words, subject_id, app_id) VALUES (new.name || ' ' || new.email || ' ' || new.user_id, new.id, new.app_id);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER search_conversations_delete AFTER DELETE ON conversations BEGIN
    DELETE FROM search_messages WHERE conversation_id = old.id;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER search_subjects_delete AFTER DELETE ON subjects BEGIN
    DELETE FROM search_subjects WHERE subject_id = old.id;
END;
-- +goose StatementEnd
