# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sqlite_backup on real SQLite files: snapshots, manifests, atomicity, bad input."""

import gzip
import json
import os
import re
import sqlite3
import stat
import subprocess
import shutil
import sys
import tempfile
import textwrap

import pytest
import zstandard
from dbtools import corrupt_index_page, sqlite_rows

from ansible_collections.botops.runbook.plugins.module_utils import _backupset, _streams
from ansible_collections.botops.runbook.plugins.module_utils._files import BackupError, sha256_file
from ansible_collections.botops.runbook.plugins.module_utils._lock import FileLock, lock_path_beside
from ansible_collections.botops.runbook.plugins.modules import sqlite_backup, sqlite_restore


def restored_copy(backup, tmp_path):
    """Decompress a backup to a plain file, as a restore would."""
    target = tmp_path / "restored.db"
    with open(target, "wb") as out:
        _streams.decompress_to(str(backup), _streams.compression_of(str(backup)), out)
    return str(target)


def listing(directory):
    return sorted(os.listdir(directory))


@pytest.fixture
def backups(tmp_path):
    directory = tmp_path / "backups"
    directory.mkdir()
    return directory


def test_check_mode_predicts_and_writes_nothing(run_module, bot_db, backups):
    path = bot_db[0]
    result = run_module(sqlite_backup, {"path": path, "dest_dir": str(backups)}, check_mode=True)
    assert not result["failed"], result.get("msg")
    assert result["changed"] is True
    assert result["dest"].startswith(str(backups) + "/bot_data_")
    assert listing(backups) == []


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_backup_is_verified_checksummed_and_private(run_module, bot_db, backups, tmp_path, compression):
    path, counts = bot_db
    result = run_module(sqlite_backup, {"path": path, "dest_dir": str(backups), "compression": compression, "bot": "demo"})
    assert not result["failed"], result.get("msg")
    assert result["changed"] is True
    assert re.match(r"bot_data_\d{8}T\d{6}Z\.db%s$" % re.escape(_streams.COMPRESSION_SUFFIX[compression]),
                    os.path.basename(result["dest"]))
    assert listing(backups) == sorted([os.path.basename(result["dest"]), os.path.basename(result["manifest"])])
    for name in listing(backups):
        assert stat.S_IMODE(os.stat(backups / name).st_mode) == 0o600
    assert result["checksum"] == sha256_file(result["dest"])
    assert result["size"] == os.path.getsize(result["dest"])
    assert result["tables"] == counts
    assert result["integrity"] == "ok"

    manifest = json.loads(open(result["manifest"]).read())
    assert manifest["format_version"] == 1
    assert manifest["engine"] == "sqlite" and manifest["database"] == "bot_data" and manifest["bot"] == "demo"
    assert manifest["files"] == [{"name": os.path.basename(result["dest"]), "size": result["size"],
                                  "sha256": result["checksum"]}]
    assert manifest["compression"] == compression
    assert manifest["tables"] == counts
    assert manifest["verified"]["ok"] is True
    assert manifest["verified"]["method"] == "quick_check"
    assert manifest["source"]["path"] == path
    assert manifest["tool"]["collection"] == "botops.runbook"

    copy = restored_copy(result["dest"], tmp_path)
    assert os.path.getsize(copy) == manifest["uncompressed_size"]
    assert sha256_file(copy) == manifest["uncompressed_sha256"]
    assert sqlite_rows(copy) == counts
    conn = sqlite3.connect(copy)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete", "a backup is one self-contained file"
    conn.close()


def test_auto_compression_is_zstd_where_the_host_has_it(run_module, bot_db, backups):
    result = run_module(sqlite_backup, {"path": bot_db[0], "dest_dir": str(backups)})
    assert result["compression"] == "zstd" and result["dest"].endswith(".db.zst")


def test_each_run_is_a_new_backup(run_module, bot_db, backups, monkeypatch):
    path = bot_db[0]
    first = run_module(sqlite_backup, {"path": path, "dest": str(backups / "latest.db"), "compression": "none"})
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO users (telegram_id, username) VALUES (1, 'late')")
    conn.commit()
    conn.close()
    second = run_module(sqlite_backup, {"path": path, "dest": str(backups / "latest.db"), "compression": "none"})
    assert first["changed"] and second["changed"]
    assert second["tables"]["users"] == first["tables"]["users"] + 1
    assert listing(backups) == ["latest.db", "latest.db.manifest.json"]
    assert json.loads((backups / "latest.db.manifest.json").read_text())["files"][0]["sha256"] == second["checksum"]


def test_vacuum_into_gives_a_compacted_copy(run_module, bot_db, backups):
    path, counts = bot_db
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM messages WHERE id % 2 = 0")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    plain = run_module(sqlite_backup, {"path": path, "dest": str(backups / "plain.db"), "compression": "none"})
    compact = run_module(sqlite_backup, {"path": path, "dest": str(backups / "compact.db"), "compression": "none",
                                         "method": "vacuum_into"})
    assert compact["tables"] == plain["tables"]
    assert compact["size"] < plain["size"]


def test_delete_mode_warns_that_writers_wait(run_module, tmp_path, backups):
    path = str(tmp_path / "games.db")
    import botdb  # pylint: disable=import-outside-toplevel
    botdb.create(path, journal_mode="delete")
    result = run_module(sqlite_backup, {"path": path, "dest_dir": str(backups)})
    assert result["journal_mode"] == "delete"
    assert any("blocks the bot's writes" in w and "journal_mode: wal" in w for w in result["warnings"])


def test_journal_mode_wal_switches_the_source(run_module, tmp_path, backups):
    path = str(tmp_path / "games.db")
    import botdb  # pylint: disable=import-outside-toplevel
    botdb.create(path, journal_mode="delete")
    checked = run_module(sqlite_backup, {"path": path, "dest_dir": str(backups), "journal_mode": "wal"}, check_mode=True)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete", "check mode changed the source"
    conn.close()
    result = run_module(sqlite_backup, {"path": path, "dest_dir": str(backups), "journal_mode": "wal"})
    assert checked["journal_mode"] == result["journal_mode"] == "wal"
    assert not result["warnings"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


# --- bad input: a clear error, and nothing changed ---------------------------

def test_missing_source(run_module, tmp_path, backups):
    result = run_module(sqlite_backup, {"path": str(tmp_path / "gone.db"), "dest_dir": str(backups)})
    assert result["failed"] and "does not exist" in result["msg"]
    assert listing(backups) == []


def test_text_file_source(run_module, tmp_path, backups):
    path = tmp_path / "notes.db"
    path.write_text("hello\n")
    result = run_module(sqlite_backup, {"path": str(path), "dest_dir": str(backups)})
    assert result["failed"] and "SQLite header" in result["msg"]
    assert listing(backups) == []


@pytest.mark.parametrize("verify", ["quick_check", "integrity_check"])
def test_corrupted_source_keeps_nothing(run_module, bot_db, backups, verify):
    path = bot_db[0]
    corrupt_index_page(path)
    result = run_module(sqlite_backup, {"path": path, "dest_dir": str(backups), "verify": verify})
    assert result["failed"]
    assert "failed its %s" % verify in result["msg"] and "nothing was kept" in result["msg"]
    assert listing(backups) == []


def index_out_of_step(path):
    """A database whose index disagrees with its table while every page is sound:
    the index's recorded definition is changed behind SQLite's back."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript("CREATE TABLE t(a INTEGER, b INTEGER); CREATE INDEX t_a ON t(a);"
                       "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 500) "
                       "INSERT INTO t SELECT v, -v FROM n;")
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX t_a ON t(b)' WHERE name = 't_a'")
    conn.close()


def test_default_check_proves_the_file_and_integrity_check_the_indexes(run_module, tmp_path, backups):
    """quick_check (the default) passes a file whose pages are sound; integrity_check
    also compares each index with its table and refuses it, keeping nothing."""
    path = str(tmp_path / "indexed.db")
    index_out_of_step(path)
    quick = run_module(sqlite_backup, {"path": path, "dest_dir": str(backups)})
    assert not quick["failed"], quick.get("msg")
    assert json.loads(open(quick["manifest"]).read())["verified"]["method"] == "quick_check"
    before = listing(backups)
    full = run_module(sqlite_backup, {"path": path, "dest_dir": str(backups), "verify": "integrity_check"})
    assert full["failed"] and "failed its integrity_check" in full["msg"] and "t_a" in full["msg"]
    assert listing(backups) == before


def test_destination_directory_missing(run_module, bot_db, tmp_path):
    missing = tmp_path / "nope"
    result = run_module(sqlite_backup, {"path": bot_db[0], "dest_dir": str(missing)})
    assert result["failed"] and "does not exist" in result["msg"] and str(missing) in result["msg"]
    assert not missing.exists()


def test_dest_and_dest_dir_are_exclusive(run_module, bot_db, backups):
    result = run_module(sqlite_backup, {"path": bot_db[0], "dest_dir": str(backups), "dest": str(backups / "x.db")})
    assert result["failed"] and "mutually exclusive" in result["msg"]


def test_zstd_without_the_package_is_a_clear_error(run_module, bot_db, backups, monkeypatch):
    # The package is installed here; a host without it is what we simulate.
    monkeypatch.setattr(_streams, "HAS_ZSTANDARD", False)
    result = run_module(sqlite_backup, {"path": bot_db[0], "dest_dir": str(backups), "compression": "zstd"})
    assert result["failed"] and "zstandard" in result["msg"] and "compression=gzip" in result["msg"]
    assert listing(backups) == []


def test_a_second_backup_of_the_same_database_waits_then_fails(run_module, bot_db, backups):
    path = bot_db[0]
    with FileLock(os.path.realpath(path), "a test", timeout=0):
        result = run_module(sqlite_backup, {"path": path, "dest_dir": str(backups), "lock_timeout": 1})
    assert result["failed"] and "another backup" in result["msg"] and "lock_timeout" in result["msg"]
    assert listing(backups) == []


def test_disk_full_precheck_refuses_before_writing(run_module, bot_db, small_fs):
    target = small_fs("64k")
    result = run_module(sqlite_backup, {"path": bot_db[0], "dest_dir": str(target), "compression": "none"})
    assert result["failed"] and "not enough free space" in result["msg"]
    assert listing(target) == []


def test_disk_full_during_write_leaves_earlier_backups_and_no_partial_file(run_module, bot_db, small_fs, monkeypatch):
    target = small_fs("48k")
    earlier = target / "bot_data_20260101T000000Z.db"
    earlier.write_bytes(b"earlier backup")
    # Something else fills the disk after the free-space check.
    monkeypatch.setattr(_backupset, "check_destination_dir", lambda directory, needed: 0)
    result = run_module(sqlite_backup, {"path": bot_db[0], "dest_dir": str(target), "compression": "none"})
    assert result["failed"]
    assert "no space left on device" in result["msg"] and "earlier backups were not touched" in result["msg"]
    assert listing(target) == [earlier.name]
    assert earlier.read_bytes() == b"earlier backup"


def test_read_only_destination(run_module, bot_db, small_fs):
    target = small_fs("1m", readonly=True)
    result = run_module(sqlite_backup, {"path": bot_db[0], "dest_dir": str(target)})
    assert result["failed"]
    assert result["msg"] == "destination directory '%s' is not writable by this user" % target


WRITER = textwrap.dedent("""
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 30000")
    deadline = time.monotonic() + float(sys.argv[2])
    written = errors = 0
    while time.monotonic() < deadline:
        try:
            conn.execute("INSERT INTO messages (user_id, chat_id, text) VALUES (1, 1, ?)", ("x" * 200,))
            written += 1
        except sqlite3.Error as exc:
            errors += 1
            sys.stderr.write("%s\\n" % exc)
        time.sleep(0.002)
    print(written, errors)
""")


def test_backup_under_a_continuous_writer_is_consistent(run_module, tmp_path, backups):
    path = str(tmp_path / "busy.db")
    import botdb  # pylint: disable=import-outside-toplevel
    botdb.create(path, users=500, messages=40000, journal_mode="wal")
    before = sqlite_rows(path)["messages"]
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path, "3"], stdout=subprocess.PIPE, text=True)
    try:
        result = run_module(sqlite_backup, {"path": path, "dest_dir": str(backups), "compression": "none"})
    finally:
        out = writer.communicate(timeout=60)[0]
    written, errors = map(int, out.split())
    after = sqlite_rows(path)["messages"]
    assert not result["failed"], result.get("msg")
    assert errors == 0, "the bot's writes must never fail during a backup"
    assert written > 0 and after == before + written
    assert before <= result["tables"]["messages"] <= after
    conn = sqlite3.connect(result["dest"])
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_compressed_file_damage_is_detected(tmp_path):
    for compression, opener in (("gzip", lambda p: gzip.open(p, "wb")), ("zstd", None)):
        path = tmp_path / ("x." + compression)
        if opener:
            with opener(path) as out:
                out.write(os.urandom(100000))
        else:
            path.write_bytes(zstandard.ZstdCompressor().compress(os.urandom(100000)))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(BackupError, match="damaged or truncated"):
            with open(tmp_path / "out", "wb") as sink:
                _streams.decompress_to(str(path), compression, sink)


# A backup killed mid-run: tests/unit/test_crashpoints.py kills it at every one of
# its file-system calls (and asserts that it died there), not after chosen delays.

# sqlite_backup in a process of its own (path, dest_dir, compression).
KILLABLE = textwrap.dedent("""
    import sys
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.botops.runbook.plugins.modules import sqlite_backup
    with patch_module_args({"path": sys.argv[1], "dest_dir": sys.argv[2], "compression": sys.argv[3]}):
        sqlite_backup.main()
""")


AS_USER = textwrap.dedent("""
    import json, sys
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.botops.runbook.plugins.modules import sqlite_backup
    with patch_module_args(json.loads(sys.argv[1])):
        sqlite_backup.main()
""")


def test_permission_denied_as_an_unprivileged_user(tmp_path):
    """A real unprivileged user ('nobody') meets a 0600 root-owned database."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"):
        pytest.skip("switching to another user needs root and a system python3")
    import botdb  # pylint: disable=import-outside-toplevel
    shared = tempfile.mkdtemp(prefix="botops-perm-", dir="/tmp")  # traversable by 'nobody'
    try:
        os.chmod(shared, 0o755)
        path = os.path.join(shared, "bot_data.db")
        botdb.create(path)
        os.chmod(path, 0o600)
        out = os.path.join(shared, "out")
        os.mkdir(out)
        os.chmod(out, 0o777)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        args = json.dumps({"path": path, "dest_dir": out})
        proc = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", AS_USER, args], env=env,
                              capture_output=True, text=True, check=False)
        result = json.loads(proc.stdout or "{}") or {"msg": proc.stderr}
        assert result.get("failed") and "Permission denied" in result["msg"] and path in result["msg"], result
        assert os.listdir(out) == []
    finally:
        shutil.rmtree(shared)


def test_two_backups_in_one_second_never_replace_each_other(run_module, bot_db, backups):
    first = run_module(sqlite_backup, {"path": bot_db[0], "dest_dir": str(backups), "compression": "none"})
    second = run_module(sqlite_backup, {"path": bot_db[0], "dest_dir": str(backups), "compression": "none"})
    assert first["dest"] != second["dest"]
    assert len(listing(backups)) == 4


def test_an_unprivileged_user_can_back_up_what_it_may_read(tmp_path):
    """'nobody' cannot write root's lock directory: the lock falls back to the temp dir."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"):
        pytest.skip("switching to another user needs root and a system python3")
    import botdb  # pylint: disable=import-outside-toplevel
    os.makedirs("/run/lock/botops", mode=0o700, exist_ok=True)
    shared = tempfile.mkdtemp(prefix="botops-perm-", dir="/tmp")
    try:
        os.chmod(shared, 0o777)
        path = os.path.join(shared, "bot_data.db")
        botdb.create(path, journal_mode="delete")
        os.chmod(path, 0o644)
        out = os.path.join(shared, "out")
        os.mkdir(out)
        os.chmod(out, 0o777)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        args = json.dumps({"path": path, "dest_dir": out, "compression": "gzip"})
        proc = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", AS_USER, args], env=env,
                              capture_output=True, text=True, check=False)
        result = json.loads(proc.stdout or "{}") or {"msg": proc.stderr}
        assert not result.get("failed"), result
        assert os.stat(result["dest"]).st_uid == 65534
    finally:
        shutil.rmtree(shared)


def test_two_backups_at_once_make_two_sets_each_as_reported(bot_db, backups):
    """Both runs start together: the name is chosen inside the lock, so each run
    publishes its own set, and each reports the checksum of the file at its dest."""
    path = bot_db[0]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    runs = [subprocess.Popen([sys.executable, "-c", KILLABLE, path, str(backups), "zstd"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for dummy in range(2)]
    results = [json.loads(run.communicate(timeout=120)[0]) for run in runs]
    assert all(not r.get("failed") for r in results), [r.get("msg") for r in results]
    assert results[0]["dest"] != results[1]["dest"]
    for result in results:
        assert sha256_file(result["dest"]) == result["checksum"]
        manifest = json.loads(open(result["manifest"]).read())
        assert manifest["files"][0]["sha256"] == result["checksum"]
    assert len([n for n in listing(backups) if n.endswith(".manifest.json")]) == 2


@pytest.mark.parametrize("target", ["", "-wal", "-shm", "-journal", "link", "dotdot"])
def test_a_destination_that_is_the_database_is_refused(run_module, bot_db, tmp_path, target):
    """dest equal to the database (or its side files, or the same file by another
    path) would replace the live data with a zstd file; it is refused, untouched."""
    path = bot_db[0]
    before = sha256_file(path)
    if target == "link":
        dest = str(tmp_path / "alias.db")
        os.symlink(path, dest)
    elif target == "dotdot":
        dest = os.path.join(os.path.dirname(path), "..", os.path.basename(os.path.dirname(path)),
                            os.path.basename(path))
    else:
        dest = path + target
    result = run_module(sqlite_backup, {"path": path, "dest": dest})
    assert result["failed"]
    assert result["msg"].startswith("refusing to back up '%s' to '%s': the destination is the database itself" %
                                    (path, dest))
    assert sha256_file(path) == before
    assert not os.path.exists(dest + ".manifest.json")


def test_a_compressed_backup_under_a_plain_name_restores(run_module, bot_db, tmp_path):
    """dest 'latest.db' with auto (zstd) compression: the restore reads the
    compression from the manifest, not from the name."""
    path, counts = bot_db
    made = run_module(sqlite_backup, {"path": path, "dest": str(tmp_path / "latest.db")})
    assert not made["failed"] and made["compression"] == "zstd"
    with open(made["dest"], "rb") as handle:
        assert handle.read(4) == b"\x28\xb5\x2f\xfd"  # a zstd frame, whatever the name says
    restored = run_module(sqlite_restore, {"src": made["dest"], "path": str(tmp_path / "restored.db")})
    assert not restored["failed"], restored.get("msg")
    assert sqlite_rows(str(tmp_path / "restored.db")) == counts


def as_nobody(args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", AS_USER, json.dumps(args)],
                          env=env, capture_output=True, text=True, check=False)
    return json.loads(proc.stdout or "{}") or {"failed": True, "msg": proc.stderr}


@pytest.fixture
def shared_dir():
    """A directory 'nobody' can traverse, with the bot's database owned by 'nobody'."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"):
        pytest.skip("switching to another user needs root and a system python3")
    import botdb  # pylint: disable=import-outside-toplevel
    shared = tempfile.mkdtemp(prefix="botops-lock-", dir="/tmp")
    os.chmod(shared, 0o755)
    data = os.path.join(shared, "data")
    os.mkdir(data)
    path = os.path.join(data, "bot_data.db")
    botdb.create(path, journal_mode="delete")
    for name in (data, path):
        os.chown(name, 65534, 65534)
    out = os.path.join(shared, "out")
    os.mkdir(out)
    os.chmod(out, 0o777)
    yield path, out
    shutil.rmtree(shared)


def test_a_root_and_a_bot_user_backup_exclude_each_other(run_module, shared_dir):
    """One lock file beside the database, whoever runs: root's lock makes the bot
    user's backup wait and fail, and the lock file is the database owner's."""
    path, out = shared_dir
    with FileLock(os.path.realpath(path), "a test", timeout=0):
        assert os.stat(lock_path_beside(path)).st_uid == 65534
        waited = as_nobody({"path": path, "dest_dir": out, "lock_timeout": 1, "compression": "gzip"})
    assert waited.get("failed") and "another backup of '%s' is still running" % path in waited["msg"], waited
    done = as_nobody({"path": path, "dest_dir": out, "compression": "gzip"})
    assert not done.get("failed"), done


def test_a_lock_file_planted_by_another_user_is_refused(run_module, bot_db, backups):
    """Someone who is neither root nor the database's owner made the lock file
    first (to hold every backup off): it is refused, by name, nothing written."""
    path = bot_db[0]
    lock = lock_path_beside(os.path.realpath(path))
    with open(lock, "w"):
        pass
    os.chown(lock, 12345, 12345)
    result = run_module(sqlite_backup, {"path": path, "dest_dir": str(backups)})
    assert result["failed"]
    assert "the lock file '%s'" % lock in result["msg"] and "belongs to uid 12345" in result["msg"]
    assert listing(backups) == []


def test_a_symlink_as_lock_file_is_refused(run_module, bot_db, backups, tmp_path):
    path = bot_db[0]
    victim = tmp_path / "victim"
    victim.write_text("x")
    os.symlink(str(victim), lock_path_beside(os.path.realpath(path)))
    result = run_module(sqlite_backup, {"path": path, "dest_dir": str(backups)})
    assert result["failed"] and "a symlink is refused" in result["msg"]
    assert victim.read_text() == "x" and listing(backups) == []
