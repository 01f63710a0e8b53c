-- Release 1.1.0: reminders, and a locale per user.
CREATE TABLE reminders (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    due_at TEXT NOT NULL,
    text TEXT NOT NULL
);
ALTER TABLE users ADD COLUMN locale TEXT NOT NULL DEFAULT 'en';
