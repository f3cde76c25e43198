-- +goose Up
-- E-mail when nobody saw a message. A conversation's *_unseen_since is
-- when the oldest message the other side has not seen was written (agents:
-- a user's message; the user: an agent's reply), NULL when they saw
-- everything. The same statements that add messages and read marks keep
-- them, and a periodic job mails the conversations whose wait has run out.
ALTER TABLE conversations ADD COLUMN agent_unseen_since INTEGER;
ALTER TABLE conversations ADD COLUMN user_unseen_since INTEGER;
CREATE INDEX conversations_agent_unseen ON conversations (agent_unseen_since) WHERE agent_unseen_since IS NOT NULL;
CREATE INDEX conversations_user_unseen ON conversations (user_unseen_since) WHERE user_unseen_since IS NOT NULL;
-- An app's waits, in milliseconds; NULL is the server's default.
ALTER TABLE apps ADD COLUMN agent_email_after INTEGER;
ALTER TABLE apps ADD COLUMN user_email_after INTEGER;
-- A member's choice: e-mail me about messages nobody saw.
ALTER TABLE app_members ADD COLUMN email_alerts INTEGER NOT NULL DEFAULT 1;
-- Users who followed the unsubscribe link of a reply by e-mail.
CREATE TABLE email_unsubscribes (
    subject_id TEXT PRIMARY KEY REFERENCES subjects(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
);
