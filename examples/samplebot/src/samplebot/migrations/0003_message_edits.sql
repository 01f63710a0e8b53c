-- Release 1.2.0: remember when a message was edited. (The release's code also
-- expects a deleted_at column that no migration creates: the bug that makes
-- 1.2.0 fail its health check.)
ALTER TABLE messages ADD COLUMN edited_at TEXT;
