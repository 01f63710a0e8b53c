-- Users and their messages, with a few rows so that a restore can be told apart.
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    joined_at TEXT NOT NULL
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    body TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE INDEX messages_user ON messages (user_id);
INSERT INTO users (id, name, joined_at) VALUES
    (1, 'alice', '2026-01-01T00:00:00Z'),
    (2, 'bob', '2026-01-02T00:00:00Z');
INSERT INTO messages (id, user_id, body, sent_at) VALUES
    (1, 1, 'hello', '2026-01-01T00:01:00Z'),
    (2, 2, 'hi alice', '2026-01-02T00:01:00Z');
