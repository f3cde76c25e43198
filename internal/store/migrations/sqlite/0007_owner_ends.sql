-- +goose Up
-- Ends of dashboard access (a sign-out, a password change, a member
-- removed) are logged beside the ends of widget sessions, so that every
-- process closes the inbox sockets concerned, not only the one that
-- took the request. owner_id is set on those rows only.
ALTER TABLE session_ends ADD COLUMN owner_id TEXT;
