# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Realistic bot databases for tests, the demo and the benchmarks.

The schema follows the runbooks' bots: users, messages (with a foreign key to
users), reminders, and indexes on the columns the bots query.

    python botdb.py PATH [--users N] [--messages N] [--journal-mode wal|delete]
"""

import argparse
import random
import sqlite3
import string

SCHEMA = """
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    telegram_id INTEGER NOT NULL UNIQUE,
    username TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    chat_id INTEGER NOT NULL,
    text TEXT NOT NULL,
    sent_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE INDEX messages_user ON messages(user_id);
CREATE INDEX messages_chat_sent ON messages(chat_id, sent_at);
CREATE TABLE reminders (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    due_at TEXT NOT NULL,
    body TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX reminders_due ON reminders(due_at) WHERE done = 0;
"""

WORDS = ["ok", "game", "score", "remind", "tomorrow", "bot", "clip", "link", "hello", "thanks", "server", "play"]


def random_text(rng, words):
    return " ".join(rng.choice(WORDS) if rng.random() < 0.5 else
                    "".join(rng.choice(string.ascii_letters) for dummy in range(rng.randint(3, 10)))
                    for dummy in range(words))


def create(path, users=50, messages=500, reminders=50, journal_mode="wal", seed=7):
    """Create (or extend) a bot database at ``path``; returns {table: rows}."""
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = %s" % journal_mode)
        conn.execute("PRAGMA foreign_keys = ON")
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'users'").fetchone():
            conn.executescript(SCHEMA)
        conn.execute("BEGIN")
        base = conn.execute("SELECT coalesce(max(id), 0) FROM users").fetchone()[0]
        conn.executemany("INSERT INTO users (id, telegram_id, username) VALUES (?, ?, ?)",
                         [(base + i, 10_000_000 + base + i, "user%d" % (base + i)) for i in range(1, users + 1)])
        top = base + users
        conn.executemany("INSERT INTO messages (user_id, chat_id, text) VALUES (?, ?, ?)",
                         [(rng.randint(1, top), rng.randint(1, 20), random_text(rng, rng.randint(3, 30)))
                          for dummy in range(messages)])
        conn.executemany("INSERT INTO reminders (user_id, due_at, body) VALUES (?, datetime('now', ?), ?)",
                         [(rng.randint(1, top), "+%d hours" % rng.randint(1, 500), random_text(rng, 6))
                          for dummy in range(reminders)])
        conn.execute("COMMIT")
        return {name: conn.execute("SELECT count(*) FROM %s" % name).fetchone()[0]
                for name in ("messages", "reminders", "users")}
    finally:
        conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--reminders", type=int, default=50)
    parser.add_argument("--journal-mode", default="wal", choices=["wal", "delete"])
    args = parser.parse_args()
    print(create(args.path, args.users, args.messages, args.reminders, args.journal_mode))


if __name__ == "__main__":
    main()
