# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sqlite_check on real SQLite files: healthy, damaged and wrong inputs."""

import hashlib
import os
import sqlite3

import pytest
from dbtools import corrupt_index_page

from ansible_collections.botops.runbook.plugins.modules import sqlite_check


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.mark.parametrize("check_mode", [False, True])
def test_healthy_database_reports_facts_and_never_changes(run_module, bot_db, journal_mode, check_mode):
    path, counts = bot_db
    result = run_module(sqlite_check, {"path": path}, check_mode=check_mode)
    assert not result["failed"]
    assert result["changed"] is False
    assert result["ok"] is True
    assert result["integrity"] == "ok"
    assert result["problems"] == []
    assert result["tables"] == counts
    assert result["journal_mode"] == journal_mode
    assert result["page_count"] * result["page_size"] >= result["size"] > 0
    assert len(result["schema_hash"]) == 64


def test_quick_check_and_no_row_counts(run_module, bot_db):
    path = bot_db[0]
    result = run_module(sqlite_check, {"path": path, "integrity": "quick", "row_counts": False})
    assert result["ok"] is True
    assert "tables" not in result


def test_orphaned_rows_fail_by_default_and_are_listed(run_module, bot_db):
    path = bot_db[0]
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO messages (user_id, chat_id, text) VALUES (999999, 1, 'orphan')")
    conn.commit()
    conn.close()

    failed = run_module(sqlite_check, {"path": path})
    assert failed["failed"] is True
    assert "1 problem(s)" in failed["msg"] and path in failed["msg"]
    assert "orphaned row" in failed["msg"] and "'messages'" in failed["msg"]

    reported = run_module(sqlite_check, {"path": path, "fail_on_problems": False})
    assert reported["failed"] is False
    assert reported["ok"] is False
    assert reported["foreign_key_problems"][0]["table"] == "messages"
    assert reported["foreign_key_problems"][0]["parent"] == "users"


def test_same_schema_same_hash_other_schema_other_hash(run_module, bot_db, tmp_path):
    path = bot_db[0]
    first = run_module(sqlite_check, {"path": path})["schema_hash"]
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE settings (k TEXT PRIMARY KEY, v TEXT)")
    conn.commit()
    conn.close()
    second = run_module(sqlite_check, {"path": path})["schema_hash"]
    assert first != second


def test_missing_file_is_a_clear_error(run_module, tmp_path):
    path = str(tmp_path / "nope.db")
    result = run_module(sqlite_check, {"path": path})
    assert result["failed"]
    assert result["msg"] == "cannot open database '%s': the file does not exist; check the path" % path
    assert not os.path.exists(path), "a check must never create the database"


def test_text_file_is_not_a_database(run_module, tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are not the tables you are looking for\n")
    result = run_module(sqlite_check, {"path": str(path)})
    assert result["failed"]
    assert "does not start with the SQLite header" in result["msg"]


def test_empty_file(run_module, tmp_path):
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    result = run_module(sqlite_check, {"path": str(path)})
    assert result["failed"] and "the file is empty" in result["msg"]


def test_truncated_file_fails_and_is_left_as_it_was(run_module, bot_db):
    path = bot_db[0]
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)
    before = sha256(path)
    result = run_module(sqlite_check, {"path": path})
    assert result["failed"] is True
    assert path in result["msg"]
    assert sha256(path) == before


def test_corrupted_page_is_found_read_only(run_module, bot_db):
    path = bot_db[0]
    corrupt_index_page(path)
    before = sha256(path)

    result = run_module(sqlite_check, {"path": path, "fail_on_problems": False})
    assert result["ok"] is False
    assert result["integrity"] == "problems"
    assert result["integrity_problems"]
    assert sha256(path) == before, "the check must not modify a damaged database"


def test_permission_denied_is_a_clear_error(run_module, bot_db, monkeypatch):
    path = bot_db[0]

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", deny)  # root reads everything: simulate the unprivileged user
    result = run_module(sqlite_check, {"path": path})
    assert result["failed"] and "Permission denied" in result["msg"] and path in result["msg"]
