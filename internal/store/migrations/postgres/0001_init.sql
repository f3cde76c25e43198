-- +goose Up
-- Parley's schema on PostgreSQL: the same tables, columns and indexes as
-- SQLite's after its migrations 0001-0005 (TestPostgresSchemaMatchesSQLite
-- compares them), written as one migration because no PostgreSQL database
-- predates it. Times are unix milliseconds in bigint, as in SQLite, so the
-- store's SQL and Go types stay the same for both; flags are boolean.

CREATE TABLE apps (
    id               text PRIMARY KEY,
    name             text NOT NULL,
    identity_mode    text NOT NULL CHECK (identity_mode IN ('enforced', 'monitor')),
    api_key_hash     text NOT NULL UNIQUE,
    created_at       bigint NOT NULL,
    require_jwt      boolean NOT NULL DEFAULT false,
    refuse_anonymous boolean NOT NULL DEFAULT false,
    disabled_at      bigint
);

CREATE TABLE app_origins (
    app_id text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    origin text NOT NULL,
    PRIMARY KEY (app_id, origin)
);

CREATE TABLE subjects (
    id            text PRIMARY KEY,
    app_id        text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('user', 'unverified', 'visitor')),
    lookup_key    text NOT NULL,
    user_id       text NOT NULL DEFAULT '',
    email         text NOT NULL DEFAULT '',
    name          text NOT NULL DEFAULT '',
    created_at    bigint NOT NULL,
    last_seen_at  bigint NOT NULL,
    last_page_url text NOT NULL DEFAULT '',
    email_signed  boolean NOT NULL DEFAULT false,
    name_signed   boolean NOT NULL DEFAULT false,
    UNIQUE (app_id, kind, lookup_key)
);

CREATE TABLE visitor_tokens (
    app_id     text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    token_hash text NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (app_id, token_hash)
);

CREATE TABLE sessions (
    token_hash    text PRIMARY KEY,
    app_id        text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    subject_id    text NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    parent_origin text NOT NULL,
    created_at    bigint NOT NULL,
    expires_at    bigint NOT NULL,
    secret_id     text,
    proof         text
);
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_secret ON sessions (secret_id) WHERE secret_id IS NOT NULL;
CREATE INDEX sessions_app ON sessions (app_id);

CREATE TABLE conversations (
    id              text PRIMARY KEY,
    app_id          text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    subject_id      text NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_at      bigint NOT NULL,
    last_message_at bigint NOT NULL,
    last_seq        bigint NOT NULL DEFAULT 0,
    user_read_seq   bigint NOT NULL DEFAULT 0,
    agent_read_seq  bigint NOT NULL DEFAULT 0
);
CREATE INDEX conversations_subject ON conversations (subject_id, last_message_at DESC);
CREATE INDEX conversations_app ON conversations (app_id, last_message_at DESC);

CREATE TABLE messages (
    id                text PRIMARY KEY,
    conversation_id   text NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq               bigint NOT NULL,
    author            text NOT NULL CHECK (author IN ('user', 'agent')),
    author_subject_id text REFERENCES subjects(id) ON DELETE CASCADE,
    author_name       text NOT NULL DEFAULT '',
    client_msg_id     text,
    body              text NOT NULL,
    created_at        bigint NOT NULL,
    UNIQUE (conversation_id, seq)
);
CREATE UNIQUE INDEX messages_client_id ON messages (author_subject_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;

CREATE TABLE owners (
    id            text PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    name          text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    created_at    bigint NOT NULL
);

CREATE TABLE owner_sessions (
    token_hash   text PRIMARY KEY,
    owner_id     text NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
    created_at   bigint NOT NULL,
    last_seen_at bigint NOT NULL,
    expires_at   bigint NOT NULL
);
CREATE INDEX owner_sessions_owner ON owner_sessions (owner_id);

CREATE TABLE app_members (
    app_id     text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    owner_id   text NOT NULL REFERENCES owners(id) ON DELETE CASCADE,
    created_at bigint NOT NULL,
    PRIMARY KEY (app_id, owner_id)
);
CREATE INDEX app_members_owner ON app_members (owner_id);

CREATE TABLE identity_secrets (
    id         text PRIMARY KEY,
    app_id     text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    secret     text NOT NULL,
    created_at bigint NOT NULL,
    retired_at bigint,
    expires_at bigint
);
CREATE UNIQUE INDEX identity_secrets_current ON identity_secrets (app_id) WHERE retired_at IS NULL;
CREATE INDEX identity_secrets_app ON identity_secrets (app_id, created_at);

CREATE TABLE session_counts (
    app_id text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    day    bigint NOT NULL,
    kind   text NOT NULL,
    n      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, day, kind)
);

CREATE TABLE jwt_ids (
    app_id     text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    jti        text NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (app_id, jti)
);
CREATE INDEX jwt_ids_expires ON jwt_ids (expires_at);

-- Read by every node in id order to close the sockets of ended sessions:
-- an identity column, as SQLite's AUTOINCREMENT. Unlike SQLite's single
-- writer, concurrent PostgreSQL transactions can commit ids out of order,
-- so a reader must not take "after the highest id seen" as complete.
CREATE TABLE session_ends (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id     text NOT NULL,
    token_hash text,
    reason     text NOT NULL,
    created_at bigint NOT NULL
);

CREATE TABLE master_key_check (
    id         bigint PRIMARY KEY CHECK (id = 1),
    sealed     text NOT NULL,
    created_at bigint NOT NULL
);
