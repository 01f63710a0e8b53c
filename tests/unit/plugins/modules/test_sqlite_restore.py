# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sqlite_restore on real backups: verified, atomic, idempotent, and refusing bad input."""

import json
import os
import sqlite3
import stat
import subprocess
import sys

import pytest
from dbtools import sqlite_rows

from ansible_collections.botops.runbook.plugins.module_utils._files import sha256_file
from ansible_collections.botops.runbook.plugins.module_utils._backupset import BackupSetReader
from ansible_collections.botops.runbook.plugins.modules import sqlite_backup, sqlite_restore


def add_users(path, count):
    conn = sqlite3.connect(path)
    conn.executemany("INSERT INTO users (telegram_id, username) VALUES (?, 'later')",
                     [(900000 + i,) for i in range(count)])
    conn.commit()
    conn.close()


@pytest.fixture(params=["zstd", "gzip", "none"])
def backed_up(request, run_module, bot_db, tmp_path):
    """A bot database, a backup of it, then more rows written after the backup."""
    path, counts = bot_db
    backups = tmp_path / "backups"
    backups.mkdir()
    result = run_module(sqlite_backup, {"path": path, "dest_dir": str(backups), "compression": request.param})
    assert not result["failed"], result.get("msg")
    add_users(path, 5)
    return path, counts, result


def test_restore_check_mode_then_real_then_again(run_module, backed_up, tmp_path):
    path, counts, backup = backed_up
    before = sha256_file(path)

    checked = run_module(sqlite_restore, {"src": backup["dest"], "path": path}, check_mode=True)
    assert not checked["failed"], checked.get("msg")
    assert checked["changed"] is True
    assert sha256_file(path) == before, "check mode must not touch the database"
    assert [n for n in os.listdir(os.path.dirname(path)) if "pre-restore" in n or n.endswith(".tmp")] == []

    restored = run_module(sqlite_restore, {"src": backup["dest"], "path": path})
    assert not restored["failed"], restored.get("msg")
    assert restored["changed"] is True
    assert sqlite_rows(path) == counts == restored["tables"] == restored["manifest_tables"]
    assert restored["integrity"] == "ok"
    assert not os.path.exists(path + "-wal")
    safety = restored["safety_copy"]
    assert safety and os.path.exists(safety)
    assert sqlite_rows(safety)["users"] == counts["users"] + 5, "the safety copy holds the state before the restore"
    assert stat.S_IMODE(os.stat(safety).st_mode) == 0o600

    again = run_module(sqlite_restore, {"src": backup["dest"], "path": path})
    assert again["changed"] is False
    assert again["safety_copy"] is None


def test_restore_keeps_owner_and_mode_of_the_replaced_file(run_module, backed_up):
    path, dummy, backup = backed_up
    os.chmod(path, 0o640)
    os.chown(path, 65534, 65534)
    run_module(sqlite_restore, {"src": backup["dest"], "path": path, "safety_copy": False})
    info = os.stat(path)
    assert stat.S_IMODE(info.st_mode) == 0o640 and (info.st_uid, info.st_gid) == (65534, 65534)


def test_restore_to_a_new_path(run_module, backed_up, tmp_path):
    dummy, counts, backup = backed_up
    target = tmp_path / "fresh.db"
    result = run_module(sqlite_restore, {"src": backup["dest"], "path": str(target)})
    assert result["changed"] and result["safety_copy"] is None
    assert sqlite_rows(str(target)) == counts
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_refuses_while_the_bot_has_the_database_open(run_module, backed_up):
    path, counts, backup = backed_up
    bot = subprocess.Popen([sys.executable, "-c", "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1]); "
                            "c.execute('select count(*) from users').fetchone(); print('open', flush=True); "
                            "time.sleep(30)", path], stdout=subprocess.PIPE, text=True)
    try:
        assert bot.stdout.readline().strip() == "open"
        before = sha256_file(path)
        refused = run_module(sqlite_restore, {"src": backup["dest"], "path": path})
        assert refused["failed"]
        assert "pid %d" % bot.pid in refused["msg"] and "stop the bot first" in refused["msg"]
        assert sha256_file(path) == before
        forced = run_module(sqlite_restore, {"src": backup["dest"], "path": path, "force": True})
        assert forced["changed"] and not forced["failed"]
        assert sqlite_rows(path) == counts
    finally:
        bot.kill()
        bot.wait()


# --- bad input: a clear error, and nothing changed ---------------------------

def unchanged(path, before):
    return sha256_file(path) == before and not [n for n in os.listdir(os.path.dirname(path)) if n.endswith(".tmp")]


def test_corrupted_backup_is_refused(run_module, backed_up):
    path, dummy, backup = backed_up
    before = sha256_file(path)
    with open(backup["dest"], "r+b") as handle:
        handle.seek(os.path.getsize(backup["dest"]) // 2)
        handle.write(b"\x00garbage\x00")
    result = run_module(sqlite_restore, {"src": backup["dest"], "path": path})
    assert result["failed"] and "does not match its manifest's sha256" in result["msg"]
    assert unchanged(path, before)


def test_truncated_backup_is_refused(run_module, backed_up):
    path, dummy, backup = backed_up
    before = sha256_file(path)
    with open(backup["dest"], "r+b") as handle:
        handle.truncate(os.path.getsize(backup["dest"]) // 2)
    result = run_module(sqlite_restore, {"src": backup["dest"], "path": path})
    assert result["failed"] and "truncated" in result["msg"]
    assert unchanged(path, before)


def test_missing_manifest_is_refused_unless_allowed(run_module, backed_up):
    path, counts, backup = backed_up
    before = sha256_file(path)
    os.unlink(backup["manifest"])
    refused = run_module(sqlite_restore, {"src": backup["dest"], "path": path})
    assert refused["failed"] and "manifest" in refused["msg"] and "missing" in refused["msg"]
    assert unchanged(path, before)
    allowed = run_module(sqlite_restore, {"src": backup["dest"], "path": path, "require_manifest": False})
    assert allowed["changed"] and sqlite_rows(path) == counts


def test_manifest_of_another_backup_is_refused(run_module, backed_up, tmp_path):
    path, dummy, backup = backed_up
    before = sha256_file(path)
    manifest = json.loads(open(backup["manifest"]).read())
    manifest["files"][0]["name"] = "someone_else.db"
    with open(backup["manifest"], "w") as handle:
        json.dump(manifest, handle)
    result = run_module(sqlite_restore, {"src": backup["dest"], "path": path})
    assert result["failed"]
    assert "file name 'someone_else.db' does not belong to the set '%s'" % os.path.basename(backup["dest"]) \
        in result["msg"]
    assert unchanged(path, before)


def test_compressed_backup_corrupted_without_manifest_is_refused(run_module, backed_up):
    path, dummy, backup = backed_up
    if backup["compression"] == "none":
        pytest.skip("not compressed")
    before = sha256_file(path)
    os.unlink(backup["manifest"])
    with open(backup["dest"], "r+b") as handle:
        handle.seek(40)
        handle.write(b"\xff" * 64)
    result = run_module(sqlite_restore, {"src": backup["dest"], "path": path, "require_manifest": False})
    assert result["failed"]
    # The decompressor refuses the stream; only its own words between these differ (zlib, libzstd).
    assert result["msg"].startswith("cannot decompress '%s' (%s): " % (backup["dest"], backup["compression"]))
    assert result["msg"].endswith("; the file is damaged or truncated")
    assert unchanged(path, before)


def test_backup_that_is_not_sqlite_is_refused(run_module, bot_db, tmp_path):
    path = bot_db[0]
    before = sha256_file(path)
    fake = tmp_path / "fake.db"
    fake.write_text("definitely not a database\n")
    result = run_module(sqlite_restore, {"src": str(fake), "path": path, "require_manifest": False})
    assert result["failed"] and "SQLite header" in result["msg"]
    assert unchanged(path, before)


def test_missing_backup_and_missing_directory(run_module, backed_up, tmp_path):
    path, dummy, backup = backed_up
    missing = run_module(sqlite_restore, {"src": str(tmp_path / "nope.db.zst"), "path": path})
    assert missing["failed"] and "does not exist" in missing["msg"]
    nodir = run_module(sqlite_restore, {"src": backup["dest"], "path": str(tmp_path / "no" / "where.db")})
    assert nodir["failed"] and "does not exist" in nodir["msg"]


def test_failed_check_after_the_swap_puts_the_safety_copy_back(run_module, backed_up, monkeypatch):
    path, counts, backup = backed_up
    real_check = sqlite_restore.integrity_check
    calls = []

    def check_fails_after_swap(conn, quick=False, max_problems=100):
        calls.append(quick)
        if len(calls) == 2:  # the first call checks the candidate, the second the swapped-in file
            return False, ["simulated: page 7 is never used"]
        return real_check(conn, quick=quick, max_problems=max_problems)

    monkeypatch.setattr(sqlite_restore, "integrity_check", check_fails_after_swap)
    os.chmod(path, 0o640)
    os.chown(path, 65534, 65534)  # the bot's file: it must stay the bot's, or the bot cannot open it
    result = run_module(sqlite_restore, {"src": backup["dest"], "path": path})
    assert result["failed"] and "was put back" in result["msg"]
    assert sqlite_rows(path)["users"] == counts["users"] + 5, "the database is back as it was before the restore"
    info = os.stat(path)
    assert stat.S_IMODE(info.st_mode) == 0o640 and (info.st_uid, info.st_gid) == (65534, 65534)


def test_a_name_swapped_in_the_bots_directory_cannot_redirect_the_root_restore(run_module, backed_up, tmp_path,
                                                                               monkeypatch):
    """The bot user may rename entries of its data directory: right after the staging
    directory is made, it is moved away and a directory with a symlink named like the
    candidate takes its name. The restore still writes, chowns and renames only its
    own files; the symlink's target (a root-only file) is untouched."""
    path, dummy, backup = backed_up
    victim = tmp_path / "root-only.txt"
    victim.write_text("secret")
    os.chmod(str(victim), 0o600)
    os.chown(path, 65534, 65534)
    real_unpack = BackupSetReader.unpack

    def swap_then_unpack(self, source, name="candidate"):
        self.staging()
        staged = self._staging.name  # pylint: disable=protected-access  # the name it was made under
        os.rename(staged, staged + ".moved")
        os.mkdir(staged)
        for planted in ("candidate", "safety", "put-back"):
            os.symlink(str(victim), os.path.join(staged, planted))
        return real_unpack(self, source, name)

    monkeypatch.setattr(BackupSetReader, "unpack", swap_then_unpack)
    monkeypatch.setattr(BackupSetReader, "plaintext", lambda self, identity: (self.staging(), self.src)[1])
    result = run_module(sqlite_restore, {"src": backup["dest"], "path": path})
    assert not result["failed"], result.get("msg")
    assert victim.read_text() == "secret"
    info = os.stat(str(victim))
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600)
    assert not os.path.islink(path) and os.stat(path).st_uid == 65534
    assert sqlite_rows(path) == sqlite_rows(path)  # opens as a database
