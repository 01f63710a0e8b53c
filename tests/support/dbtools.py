# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small helpers the unit tests share: look into databases, damage them on purpose."""

import sqlite3

import psycopg2


def integrity(path):
    """PRAGMA integrity_check of the SQLite file ``path``, opened read-only."""
    conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def sqlite_rows(path):
    """{table: rows} of a SQLite file, read-only."""
    conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return {name: conn.execute('SELECT count(*) FROM "%s"' % name).fetchone()[0]
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")}
    finally:
        conn.close()


def corrupt_index_page(path, index="messages_user"):
    """Scribble over the root page of an index, as a bad disk would."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (index,)).fetchone()[0]
    conn.close()
    with open(path, "r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\xa5" * page_size)


def pg_query(info, db, statement, user="superuser", application_name="pytest"):
    """Run one statement on the harness server (autocommit); rows, or None."""
    conn = psycopg2.connect(host=info["host"], port=info["port"], dbname=db, user=info[user],
                            password=info["%s_password" % user], application_name=application_name)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()
