-- +goose Up
-- Files sent in chats, as SQLite's 0014.
CREATE TABLE attachments (
    id              text PRIMARY KEY,
    app_id          text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    subject_id      text REFERENCES subjects(id) ON DELETE CASCADE,
    conversation_id text REFERENCES conversations(id) ON DELETE CASCADE,
    message_id      text,
    name            text NOT NULL,
    type            text NOT NULL,
    size            bigint NOT NULL,
    data            bytea NOT NULL,
    created_at      bigint NOT NULL
);
CREATE INDEX attachments_subject ON attachments (subject_id, created_at);
CREATE INDEX attachments_app ON attachments (app_id, created_at);
CREATE INDEX attachments_message ON attachments (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX attachments_conversation ON attachments (conversation_id) WHERE conversation_id IS NOT NULL;
