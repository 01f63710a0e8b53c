# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kill each writing operation at its file-system calls, one after another, and
check what survives (see tests/support/crashpoints.py). ``make test`` runs a
spread sample of the points; ``make crashtest`` runs every one of them."""

import json
import os
import shutil
import sqlite3

import pytest
import crashpoints
from dbtools import sqlite_rows

from ansible_collections.botops.runbook.plugins.module_utils._catalog import scan
from ansible_collections.botops.runbook.plugins.module_utils._files import sha256_file


def integrity(path):
    conn = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def sound_catalog(directory):
    """Every final name in ``directory`` belongs to a complete set whose files match
    their manifest, or to an unfinished one whose complete manifest is pending
    beside it (killed between the two renames); otherwise only hidden temporary
    files may be left over."""
    catalog = scan(str(directory), verify_checksums=True)
    assert catalog["problems"] == [], catalog["problems"]
    assert all(b["checksums"] == "ok" for b in catalog["sets"])
    for unfinished in catalog["unfinished"]:
        manifest = json.loads(open(unfinished["pending_manifest"]).read())
        entry = [e for e in manifest["files"] if e["name"] == os.path.basename(unfinished["path"])][0]
        assert sha256_file(unfinished["path"]) == entry["sha256"]
    return catalog


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_sqlite_backup_killed_at_every_call(bot_db, tmp_path, compression):
    path, counts = bot_db
    out = tmp_path / "out"
    out.mkdir()
    args = {"path": path, "dest_dir": str(out), "compression": compression}
    crashpoints.count("sqlite_backup", args, str(tmp_path))  # a first run also makes the lock file
    total, seen = crashpoints.count("sqlite_backup", args, str(tmp_path))
    assert total >= 8, seen  # the hook saw the run's writes
    shutil.rmtree(str(out))
    out.mkdir()
    killed = 0
    for point in crashpoints.points(total):
        rc, result, dummy = crashpoints.run("sqlite_backup", args, point, str(tmp_path))
        killed += rc == -9
        assert rc == -9, (point, rc, result)  # it really died at that call, not before or after
        assert integrity(path) == "ok" and sqlite_rows(path) == counts  # the live database is untouched
        sound_catalog(out)  # a complete set or no final name
    rc, result, dummy = crashpoints.run("sqlite_backup", args, 0, str(tmp_path))
    assert rc == 0 and not result.get("failed"), result  # a rerun converges
    catalog = sound_catalog(out)
    assert any(b["verified"] and b["path"] == result["dest"] for b in catalog["sets"])
    assert killed == len(crashpoints.points(total))


def test_sqlite_restore_killed_at_every_call(run_module, bot_db, tmp_path):
    """Over a live database: after a kill at any call it is the old database or
    the backup, whole, never anything else; a rerun converges on the backup."""
    from ansible_collections.botops.runbook.plugins.modules import sqlite_backup  # pylint: disable=import-outside-toplevel
    path, counts = bot_db
    out = tmp_path / "out"
    out.mkdir()
    made = run_module(sqlite_backup, {"path": path, "dest_dir": str(out), "compression": "zstd"})
    assert not made["failed"], made.get("msg")
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM messages WHERE id > 10")
    conn.commit()
    conn.close()
    pristine = str(tmp_path / "pristine.db")
    shutil.copyfile(path, pristine)
    args = {"src": made["dest"], "path": path}
    total, seen = crashpoints.count("sqlite_restore", args, str(tmp_path))
    shutil.copyfile(pristine, path)
    assert total >= 6, seen
    for point in crashpoints.points(total):
        shutil.copyfile(pristine, path)
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.unlink(path + suffix)
        rc, result, dummy = crashpoints.run("sqlite_restore", args, point, str(tmp_path))
        assert rc == -9, (point, rc, result)
        assert integrity(path) == "ok"
        rows = sqlite_rows(path)
        assert rows in ({**counts, "messages": 10}, counts), rows
        for name in os.listdir(os.path.dirname(path)):
            if ".pre-restore-" in name and name.endswith(".db") and not name.startswith("."):  # whole or absent
                assert integrity(os.path.join(os.path.dirname(path), name)) == "ok"
        rc, result, dummy = crashpoints.run("sqlite_restore", args, 0, str(tmp_path))
        assert rc == 0 and not result.get("failed"), result
        assert sqlite_rows(path) == counts
