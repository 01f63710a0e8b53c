"""The bot's database, SQLite by default or PostgreSQL (BOT_DB_ENGINE=postgresql),
and its migrations: numbered SQL files applied in order, each in one transaction,
recorded in schema_migrations."""

import os
import sqlite3

from samplebot.config import PACKAGE_DIR, ConfigError

MIGRATIONS_DIR = os.path.join(PACKAGE_DIR, "migrations")
TRACKING_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"


def engine():
    name = os.environ.get("BOT_DB_ENGINE", "sqlite")
    if name not in ("sqlite", "postgresql"):
        raise ConfigError("BOT_DB_ENGINE is %r: use sqlite or postgresql" % name)
    return name


def connect():
    """A connection; PostgreSQL takes its settings from libpq's PG* variables."""
    if engine() == "postgresql":
        import psycopg2  # only PostgreSQL bots need it
        return psycopg2.connect("")
    path = os.environ.get("BOT_DB_PATH", "")
    if not path:
        raise ConfigError("BOT_DB_PATH is not set: name the SQLite database file in the .env file")
    conn = sqlite3.connect(path, timeout=10, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def query(conn, sql):
    cur = conn.cursor()
    cur.execute(sql)
    rows = cur.fetchall() if cur.description else []
    cur.close()
    return rows


def available_migrations(up_to):
    names = sorted(n for n in os.listdir(MIGRATIONS_DIR) if n.endswith(".sql"))
    return [(n.split("_", 1)[0], n) for n in names if n.split("_", 1)[0] <= up_to]


def applied(conn):
    query(conn, TRACKING_TABLE)
    if engine() == "postgresql":
        conn.commit()
    return [row[0] for row in query(conn, "SELECT version FROM schema_migrations ORDER BY version")]


def schema_version(conn):
    versions = applied(conn)
    return versions[-1] if versions else "none"


def migrate(conn, up_to):
    """Apply the migrations up to this release's schema; returns those applied."""
    done = set(applied(conn))
    ran = []
    for version, name in available_migrations(up_to):
        if version in done:
            continue
        with open(os.path.join(MIGRATIONS_DIR, name), encoding="utf-8") as f:
            sql = f.read()
        record = "INSERT INTO schema_migrations (version, applied_at) VALUES ('%s', CURRENT_TIMESTAMP)" % version
        if engine() == "postgresql":
            with conn.cursor() as cur:
                cur.execute(sql)
                cur.execute(record)
            conn.commit()
        else:
            conn.executescript("BEGIN;\n%s\n%s;\nCOMMIT;" % (sql, record))
        ran.append(version)
    return ran
