# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sqlite_vacuum on real files: honest check mode, real run, idempotent repeat."""

import sqlite3
import subprocess
import sys

import pytest

from ansible_collections.botops.runbook.plugins.module_utils._files import sha256_file
from ansible_collections.botops.runbook.plugins.modules import sqlite_vacuum


def delete_half(path):
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM messages WHERE id % 2 = 0")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("operation", ["vacuum", "analyze", "reindex", "optimize"])
def test_check_then_real_then_again(run_module, bot_db, operation):
    path = bot_db[0]
    delete_half(path)
    args = {"path": path, "operations": [operation]}
    checked = run_module(sqlite_vacuum, args, check_mode=True, diff=True)
    assert not checked["failed"], checked.get("msg")
    real = run_module(sqlite_vacuum, args)
    again = run_module(sqlite_vacuum, args)
    assert checked["changed"] == real["changed"], "check mode predicts what the real run does"
    assert again["changed"] is False
    assert "diff" in checked and "diff" not in real
    if operation in ("vacuum", "analyze"):
        assert real["changed"] is True


def test_check_mode_writes_nothing(run_module, bot_db):
    path = bot_db[0]
    delete_half(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = sha256_file(path)
    run_module(sqlite_vacuum, {"path": path, "operations": ["vacuum", "analyze", "reindex", "optimize"],
                               "journal_mode": "delete"}, check_mode=True)
    assert sha256_file(path) == before


def test_vacuum_returns_space_and_reports_before_and_after(run_module, bot_db):
    path, counts = bot_db
    delete_half(path)
    result = run_module(sqlite_vacuum, {"path": path, "operations": ["wal_checkpoint", "vacuum"]})
    assert result["before"]["freelist_count"] > 0
    assert result["after"]["freelist_count"] == 0
    assert result["after"]["page_count"] < result["before"]["page_count"]
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == counts["users"]
    conn.close()


def test_journal_mode_and_checkpoint(run_module, tmp_path):
    import botdb  # pylint: disable=import-outside-toplevel
    path = str(tmp_path / "old.db")
    botdb.create(path, journal_mode="delete")
    first = run_module(sqlite_vacuum, {"path": path, "journal_mode": "wal"})
    second = run_module(sqlite_vacuum, {"path": path, "journal_mode": "wal"})
    assert first["changed"] and first["after"]["journal_mode"] == "wal"
    assert second["changed"] is False

    writer = sqlite3.connect(path)  # keeps the WAL from being folded in at close
    writer.execute("INSERT INTO users (telegram_id) VALUES (424242)")
    writer.commit()
    checkpoint = run_module(sqlite_vacuum, {"path": path, "operations": ["wal_checkpoint"]})
    writer.close()
    assert checkpoint["changed"] and checkpoint["before"]["wal_size"] > 0 and checkpoint["after"]["wal_size"] == 0


def test_locked_database_is_a_clear_error(run_module, bot_db):
    path = bot_db[0]
    holder = subprocess.Popen([sys.executable, "-c", "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1], "
                               "isolation_level=None); c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); "
                               "time.sleep(30)", path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = run_module(sqlite_vacuum, {"path": path, "operations": ["vacuum"], "busy_timeout": 300})
        assert result["failed"]
        assert "locked" in result["msg"] and "busy_timeout" in result["msg"] and path in result["msg"]
    finally:
        holder.kill()
        holder.wait()


def test_vacuum_refused_without_room(run_module, small_fs):
    import botdb  # pylint: disable=import-outside-toplevel
    path = str(small_fs("400k") / "bot.db")
    botdb.create(path, messages=1500, journal_mode="delete")
    before = sha256_file(path)
    result = run_module(sqlite_vacuum, {"path": path, "operations": ["vacuum"]})
    assert result["failed"] and "refusing to VACUUM" in result["msg"] and "twice the database" in result["msg"]
    assert sha256_file(path) == before


def test_missing_and_not_sqlite(run_module, tmp_path):
    missing = run_module(sqlite_vacuum, {"path": str(tmp_path / "x.db"), "operations": ["vacuum"]})
    assert missing["failed"] and "does not exist" in missing["msg"]
    assert not (tmp_path / "x.db").exists()
    text = tmp_path / "t.db"
    text.write_text("hi\n")
    wrong = run_module(sqlite_vacuum, {"path": str(text), "operations": ["analyze"]})
    assert wrong["failed"] and "SQLite header" in wrong["msg"]
