-- +goose Up
-- Files sent in chats, kept in the database so that every node of a
-- cluster serves them. An upload belongs to its uploader (a user's
-- subject_id, or an agent's app) until a message carries it: then
-- message_id and conversation_id say whose it is, and it goes with the
-- conversation.
CREATE TABLE attachments (
    id              TEXT PRIMARY KEY,
    app_id          TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    subject_id      TEXT REFERENCES subjects(id) ON DELETE CASCADE,
    conversation_id TEXT REFERENCES conversations(id) ON DELETE CASCADE,
    message_id      TEXT,
    name            TEXT NOT NULL,
    type            TEXT NOT NULL,
    size            INTEGER NOT NULL,
    data            BLOB NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX attachments_subject ON attachments (subject_id, created_at);
CREATE INDEX attachments_app ON attachments (app_id, created_at);
CREATE INDEX attachments_message ON attachments (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX attachments_conversation ON attachments (conversation_id) WHERE conversation_id IS NOT NULL;
