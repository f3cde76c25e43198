-- +goose Up
-- E-mail when nobody saw a message, as SQLite's 0011.
ALTER TABLE conversations ADD COLUMN agent_unseen_since bigint;
ALTER TABLE conversations ADD COLUMN user_unseen_since bigint;
CREATE INDEX conversations_agent_unseen ON conversations (agent_unseen_since) WHERE agent_unseen_since IS NOT NULL;
CREATE INDEX conversations_user_unseen ON conversations (user_unseen_since) WHERE user_unseen_since IS NOT NULL;
ALTER TABLE apps ADD COLUMN agent_email_after bigint;
ALTER TABLE apps ADD COLUMN user_email_after bigint;
ALTER TABLE app_members ADD COLUMN email_alerts boolean NOT NULL DEFAULT true;
CREATE TABLE email_unsubscribes (
    subject_id text PRIMARY KEY REFERENCES subjects(id) ON DELETE CASCADE,
    created_at bigint NOT NULL
);
