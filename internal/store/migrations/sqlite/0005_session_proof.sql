-- +goose Up
-- How a verified session proved who its user is: 'hash' (a user_hash) or
-- 'jwt' (an identity JWT); NULL for visitors and unverified claims. When an
-- app starts to require JWTs, its 'hash' sessions end.
ALTER TABLE sessions ADD COLUMN proof TEXT;

-- Verified sessions from before this don't say how they were proved (nor,
-- from before 0003, which secret proved them), so requiring JWTs or
-- revoking a secret would miss them. They end here; the widget makes a new
-- session with the page's proof when it reconnects.
DELETE FROM sessions WHERE subject_id IN (SELECT id FROM subjects WHERE kind = 'user');
