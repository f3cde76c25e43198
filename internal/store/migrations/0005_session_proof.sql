-- How a verified session proved who its user is: 'hash' (a user_hash) or
-- 'jwt' (an identity JWT); NULL for visitors and unverified claims. When an
-- app starts to require JWTs, its 'hash' sessions end.
ALTER TABLE sessions ADD COLUMN proof TEXT;

-- Verified sessions from before sessions recorded their secret can't be
-- matched to one, so revoking that secret would miss them. They end here;
-- the widget makes a new session with the page's proof when it reconnects.
DELETE FROM sessions WHERE secret_id IS NULL
    AND subject_id IN (SELECT id FROM subjects WHERE kind = 'user');
