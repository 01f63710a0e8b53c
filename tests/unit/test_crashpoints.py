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
import sys
import time

import pytest
import botdb
import crashpoints
from dbtools import integrity, sqlite_rows

from ansible_collections.botops.runbook.plugins.module_utils._catalog import scan
from ansible_collections.botops.runbook.plugins.module_utils._files import sha256_file


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


# PostgreSQL: the module is killed, the programs it started (pg_dump, pg_restore,
# psql) may run on as orphans: each step waits for them before it looks.

def private_leftovers():
    """Working directories in the runner's private cache that no live run holds."""
    from ansible_collections.botops.runbook.plugins.module_utils import _workdir  # pylint: disable=import-outside-toplevel
    cache = _workdir.private_cache()
    left = []
    for name in os.listdir(cache):
        fd = os.open(os.path.join(cache, name), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            import fcntl  # pylint: disable=import-outside-toplevel
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                left.append(name)
            except OSError:
                pass
        finally:
            os.close(fd)
    return left


def plaintext_in_tmp(marker):
    """Files in the system's temporary directory (not ours) whose content holds ``marker``."""
    import tempfile  # pylint: disable=import-outside-toplevel
    found = []
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this file names it
    for dirpath, dirnames, filenames in os.walk(tempfile.gettempdir()):
        dirnames[:] = [d for d in dirnames if not d.startswith(("pytest-of-", "botops-pg-", "botops-build"))
                       and os.path.join(dirpath, d) != checkout]
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                if os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) < (64 << 20):
                    with open(path, "rb") as handle:
                        if marker in handle.read():
                            found.append(path)
            except OSError:
                pass
    return found


def wait_for_orphans(db_info):
    """Until no pg_dump/pg_restore/psql of the killed run talks to the server."""
    import time  # pylint: disable=import-outside-toplevel
    from dbtools import pg_query  # pylint: disable=import-outside-toplevel
    for dummy in range(300):
        busy = pg_query(db_info, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'botops.runbook' "
                                             "AND pid <> pg_backend_pid()")[0][0]
        if not busy:
            return
        time.sleep(0.1)
    raise AssertionError("the killed run's programs still talk to the server after 30 s")


@pytest.fixture
def age_key(tmp_path):
    import subprocess  # pylint: disable=import-outside-toplevel
    if not shutil.which("age-keygen"):
        pytest.skip("age is installed by scripts/setup.sh")
    key = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True).stdout.strip()
    return str(key), recipient


def test_postgresql_backup_killed_at_every_call(pg_botdb, tmp_path, age_key):
    """Encrypted, verified: after a kill at any call, every final name is a sound set
    (or an unfinished one), the advisory lock is free again, no plaintext is left in
    the system's temporary directory, and a rerun converges."""
    from dbtools import pg_query  # pylint: disable=import-outside-toplevel
    out = tmp_path / "out"
    out.mkdir()
    args = {"login_host": pg_botdb["host"], "login_port": pg_botdb["port"], "login_user": "postgres",
            "login_password": pg_botdb["superuser_password"], "db": pg_botdb["app_db"], "dest_dir": str(out),
            "encrypt_to": [age_key[1]], "row_counts": "exact", "lock_timeout": 20}
    total, seen = crashpoints.count("postgresql_backup", args, str(tmp_path))
    assert total >= 8, seen
    shutil.rmtree(str(out))
    out.mkdir()
    before = pg_query(pg_botdb, pg_botdb["app_db"], "SELECT count(*) FROM messages")
    for point in crashpoints.points(total):
        rc, result, dummy = crashpoints.run("postgresql_backup", args, point, str(tmp_path))
        assert rc == -9, (point, rc, result)
        wait_for_orphans(pg_botdb)
        sound_catalog(out)
        assert plaintext_in_tmp(b"COPY public.messages") == []
        assert pg_query(pg_botdb, pg_botdb["app_db"], "SELECT count(*) FROM messages") == before
    rc, result, dummy = crashpoints.run("postgresql_backup", args, 0, str(tmp_path))
    assert rc == 0 and not result.get("failed"), result
    catalog = sound_catalog(out)
    assert any(b["verified"] and b["path"] == result["dest"] for b in catalog["sets"])
    assert private_leftovers() == []


def test_postgresql_restore_killed_at_every_call(pg_botdb, tmp_path, age_key):
    """An encrypted set into a new database: after a kill at any call the source is
    untouched, no plaintext (dump or passfile) is in the system's temporary
    directory, the next run removes what the killed one left in its private
    working directory, and the rerun restores the set whole."""
    from dbtools import pg_query  # pylint: disable=import-outside-toplevel
    login = {"login_host": pg_botdb["host"], "login_port": pg_botdb["port"], "login_user": "postgres",
             "login_password": pg_botdb["superuser_password"]}
    out = tmp_path / "out"
    out.mkdir()
    backup_args = dict(login, db=pg_botdb["app_db"], dest_dir=str(out), encrypt_to=[age_key[1]], row_counts="exact")
    rc, made, dummy = crashpoints.run("postgresql_backup", backup_args, 0, str(tmp_path))
    assert rc == 0 and not made.get("failed"), made
    args = dict(login, db="postgres", src=made["dest"], target_db="crash_restored", decrypt_identity=age_key[0])
    drop = 'DROP DATABASE IF EXISTS "crash_restored" WITH (FORCE)'
    source = pg_query(pg_botdb, pg_botdb["app_db"], "SELECT count(*) FROM messages")
    total, seen = crashpoints.count("postgresql_restore", args, str(tmp_path))
    assert total >= 5, seen
    try:
        for point in crashpoints.points(total):
            pg_query(pg_botdb, "postgres", drop)
            rc, result, dummy = crashpoints.run("postgresql_restore", args, point, str(tmp_path))
            assert rc == -9, (point, rc, result)
            wait_for_orphans(pg_botdb)
            assert plaintext_in_tmp(b"COPY public.messages") == [] and plaintext_in_tmp(login["login_password"].encode()) == []
            rc, result, dummy = crashpoints.run("postgresql_restore", args, 0, str(tmp_path))
            assert rc == 0 and not result.get("failed"), (point, result.get("msg"))
            # the rerun restored it, or found the killed run had finished it and been proven
            assert pg_query(pg_botdb, "crash_restored", "SELECT count(*) FROM messages") == source, point
            assert private_leftovers() == [], point
    finally:
        pg_query(pg_botdb, "postgres", drop)


# backup_prune and deploy_ledger: the module itself does all the writing.

def make_old_set(directory, database, hours_ago):
    """A verified SQLite set of ``database`` as sqlite_backup writes it, ``hours_ago`` old."""
    import datetime  # pylint: disable=import-outside-toplevel
    import hashlib  # pylint: disable=import-outside-toplevel
    from ansible_collections.botops.runbook.plugins.module_utils._manifest import (  # pylint: disable=import-outside-toplevel
        backup_name, manifest_path, new_manifest, write_manifest)
    created = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(hours=hours_ago)
    path = os.path.join(str(directory), backup_name(database, created, ".db", "none"))
    data = ("%s %s" % (database, created)).encode() * 100
    with open(path, "wb") as handle:
        handle.write(data)
    manifest = new_manifest("sqlite", database, created, bot="crashbot")
    manifest.update(host="bot1", files=[{"name": os.path.basename(path), "size": len(data),
                                         "sha256": hashlib.sha256(data).hexdigest()}],
                    verified={"method": "integrity_check", "ok": True, "at": "x"})
    write_manifest(manifest_path(path), manifest)
    return path


def test_backup_prune_killed_at_every_call(tmp_path):
    """Two series, old sets, a stale temporary file and an unfinished set: after a
    kill at any call, every kept set is whole, no data file is left without its
    manifest (a manifest may have lost its files, reported), and a rerun converges
    to exactly the sets the policy keeps, with no problem left."""
    pristine = tmp_path / "pristine"
    pristine.mkdir()
    for database in ("bot_data", "games"):
        for hours in (1, 30, 55, 80, 105):
            make_old_set(pristine, database, hours)
    old = os.path.getmtime(str(pristine)) - 3 * 86400
    stale = pristine / ".bot_data_20200101T000000Z.db.zst.abcd1234.tmp"
    stale.write_bytes(b"left by a killed run")
    unfinished = make_old_set(pristine, "bot_data", 200)
    pending = os.path.join(str(pristine), ".%s.manifest.json.0123abcd.tmp" % os.path.basename(unfinished))
    os.rename(unfinished + ".manifest.json", pending)
    for path in (str(stale), pending, unfinished):
        os.utime(path, (old, old))
    args = {"path": str(tmp_path / "out"), "keep_last": 2}

    def fresh():
        if os.path.exists(args["path"]):
            shutil.rmtree(args["path"])
        shutil.copytree(str(pristine), args["path"])  # copy2: the mtimes too

    fresh()
    total, seen = crashpoints.count("backup_prune", args, str(tmp_path))
    assert total == 15, seen  # 6 sets of 2 files, the stale file, the unfinished set's 2
    fresh()
    rc, wanted, dummy = crashpoints.run("backup_prune", dict(args, _ansible_check_mode=True), 0, str(tmp_path))
    kept = sorted(k["path"] for k in wanted["kept"])
    assert len(kept) == 4
    for point in crashpoints.points(total):
        fresh()
        rc, result, dummy = crashpoints.run("backup_prune", args, point, str(tmp_path))
        assert rc == -9, (point, rc, result)
        catalog = scan(args["path"], verify_checksums=True)
        assert catalog["unknown_files"] == [], (point, catalog["unknown_files"])
        assert all(p.endswith(" is gone") or " are gone" in p for p in catalog["problems"]), catalog["problems"]
        whole = sorted(b["path"] for b in catalog["sets"] if b["complete"] and b["checksums"] == "ok")
        assert set(kept) <= set(whole), point
        rc, result, dummy = crashpoints.run("backup_prune", args, 0, str(tmp_path))
        assert rc == 0 and not result.get("failed"), (point, result)
        catalog = scan(args["path"], verify_checksums=True)
        assert sorted(b["path"] for b in catalog["sets"]) == kept and catalog["problems"] == [], (point, catalog)
        assert catalog["temporary_files"] == [] and catalog["unfinished"] == [], point


def test_deploy_ledger_killed_at_every_call(tmp_path):
    """After a kill at any call the ledger is the old one or the new one, whole;
    a rerun records the entry once and leaves no temp file of the killed write."""
    root = tmp_path / "bot"
    root.mkdir()
    path = root / "ledger.jsonl"
    old = "".join(json.dumps({"id": "d%d" % i, "release": "r%d" % i, "outcome": "success"}, sort_keys=True) + "\n"
                  for i in range(5))
    entry = {"id": "d9", "release": "r9", "kind": "deploy", "outcome": "in_progress"}
    args = {"path": str(path), "state": "present", "entry": entry}
    path.write_text(old)
    path.chmod(0o640)  # the module's mode, which its lock file then follows
    crashpoints.count("deploy_ledger", args, str(tmp_path))  # makes the lock file (later runs open it only)
    path.write_text(old)
    total, seen = crashpoints.count("deploy_ledger", args, str(tmp_path))
    assert total == 5, seen  # the lock, the temp file (made, reopened), its mode, the rename
    new = path.read_text()
    assert new.startswith(old) and new.count("\n") == 6
    for point in crashpoints.points(total):
        path.write_text(old)
        rc, result, dummy = crashpoints.run("deploy_ledger", args, point, str(tmp_path))
        assert rc == -9, (point, rc, result)
        assert path.read_text() in (old, new), point
        rc, result, dummy = crashpoints.run("deploy_ledger", args, 0, str(tmp_path))
        assert rc == 0 and not result.get("failed"), (point, result)
        assert path.read_text() == new, point
        assert sorted(os.listdir(str(root))) == [".ledger.jsonl.botops.lock", "ledger.jsonl"], (point, os.listdir(str(root)))


def tree_digest(root):
    """{relative path: sha256} of every file under ``root``."""
    found = {}
    for dirpath, dummy, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            found[os.path.relpath(path, root)] = sha256_file(path)
    return found


@pytest.fixture
def offsite(tmp_path):
    """Two bots' hosts' worth of sets (two sets of one series, one of another), a
    play of the backup_offsite role, both hosts on connection local."""
    src, dst, stage = (str(tmp_path / n) for n in ("src", "dst", "stage"))
    os.mkdir(src)
    os.mkdir(stage, 0o700)  # as every run after the first finds it: the same calls in each
    for bot, sets in (("botA", 2), ("botB", 1)):
        db = str(tmp_path / ("%s.db" % bot))
        botdb.create(db, journal_mode="wal")
        for i in range(sets):
            rc, made, dummy = crashpoints.run("sqlite_backup", {"path": db, "backup_root": src, "bot": bot,
                                                                "compression": "none"}, 0, str(tmp_path))
            assert rc == 0 and not made.get("failed"), made
            time.sleep(1.05)  # one set a second: the next gets a name of its own
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[bots]\nbot1\n[backup_hosts]\nbackup\n[all:vars]\nansible_connection=local\n"
                         "ansible_python_interpreter=%s\n" % sys.executable)
    playbook = tmp_path / "offsite.yml"
    playbook.write_text(json.dumps([{"hosts": "bots", "gather_facts": False, "roles": [{
        "role": "botops.runbook.backup_offsite", "backup_offsite_host": "backup", "backup_offsite_source_root": src,
        "backup_offsite_dest_root": dst, "backup_offsite_staging_dir": stage,
        "backup_offsite_retention": {"keep_last": 5}}]}]))
    return {"src": src, "dst": dst, "stage": stage, "argv": ["-i", str(inventory), str(playbook)]}


@pytest.mark.parametrize("scope,sample", [("run", 8), ("group", 6)])
def test_offsite_copy_killed_at_every_call(offsite, tmp_path, scope, sample):
    """The backup_offsite role killed at each file-system call under the source
    tree, the staging directory or the backup host's tree - every process of the
    run, or (scope group) the controller and the module making the call while
    Ansible's workers go on with their loops:
    the bot host's sets are untouched; on the backup host every manifest's set is
    whole, and nothing but a set's own data waits for its manifest; a rerun copies
    every set, all of them verified, nothing left over."""
    src, dst, stage, argv = offsite["src"], offsite["dst"], offsite["stage"], offsite["argv"]
    before = tree_digest(src)
    wanted = sorted(os.path.relpath(b["path"], src) for b in scan(src)["sets"])
    assert len(wanted) == 3
    rc, out, calls = crashpoints.run_playbook(argv, [src, dst, stage], 0, str(tmp_path))
    assert rc == 0, out[-3000:]
    total = len(calls)
    assert total >= 3 * 8, calls  # each set: staged (2 files), put (2 files, renamed, mode), unstaged
    whole = tree_digest(dst)
    for point in crashpoints.points(total, sample=sample):
        shutil.rmtree(dst)
        rc, out, dummy = crashpoints.run_playbook(argv, [src, dst, stage], point, str(tmp_path), scope=scope)
        assert rc == -9, (point, rc, out[-2000:])
        assert tree_digest(src) == before, point
        if os.path.isdir(dst):
            catalog = scan(dst, verify_checksums=True)
            assert all(b["complete"] and b["checksums"] == "ok" for b in catalog["sets"]), (point, catalog["sets"])
            # A set's data copied whole, its manifest not yet: the one problem allowed.
            waiting = [os.path.relpath(p, dst) for p in catalog["unknown_files"]]
            assert all(p in before and sha256_file(os.path.join(dst, p)) == before[p] for p in waiting), (point, waiting)
            assert catalog["problems"] == ["file '%s' has no manifest: unfinished, or not made by this collection"
                                           % p for p in catalog["unknown_files"]], (point, catalog["problems"])
            for dirpath, dummy, files in os.walk(dst):  # a directory others may enter is empty (made, not chmodded)
                assert os.stat(dirpath).st_mode & 0o077 == 0 or os.listdir(dirpath) == [], (point, dirpath)
        rc, out, dummy = crashpoints.run_playbook(argv, [src, dst, stage], 0, str(tmp_path))
        assert rc == 0, (point, out[-3000:])
        catalog = scan(dst, verify_checksums=True)
        assert sorted(os.path.relpath(b["path"], dst) for b in catalog["sets"]) == wanted, (point, catalog)
        assert catalog["problems"] == [] and catalog["unknown_files"] == [] and catalog["temporary_files"] == [], \
            (point, catalog)
        assert tree_digest(dst) == whole, point
        assert [f for dummy, dummy, files in os.walk(stage) for f in files] == [], point


def test_deploy_ledger_sweeps_only_its_own_temp_files(tmp_path):
    """What the next writer removes is the ledger's own ``.<name>.XXXXXXXX.tmp``:
    a neighbour's temp file (whose name starts with the ledger's) and other
    hidden files stay; a path naming a directory removes nothing."""
    path = tmp_path / "ledger.jsonl"
    path.write_text("")
    own, others = ".ledger.jsonl.k3_9xq0a.tmp", [".ledger.jsonl.old.3hli13h6.tmp", "..junk.tmp", ".ledger.jsonl.tmp"]
    for name in [own] + others:
        (tmp_path / name).write_text("x")
    rc, result, dummy = crashpoints.run("deploy_ledger", {"path": str(path), "state": "present",
                                                          "entry": {"id": "d1"}}, 0, str(tmp_path))
    assert rc == 0 and not result.get("failed"), result
    left = sorted(n for n in os.listdir(str(tmp_path)) if n.startswith("."))
    assert left == sorted(others + [".ledger.jsonl.botops.lock"]), left
    rc, result, dummy = crashpoints.run("deploy_ledger", {"path": str(tmp_path) + "/", "state": "present",
                                                          "entry": {"id": "d1"}}, 0, str(tmp_path))
    assert result["failed"]
    assert sorted(n for n in os.listdir(str(tmp_path)) if n.startswith(".")) == left


def test_offsite_copy_that_fails_its_check_on_arrival_is_withdrawn(offsite, tmp_path):
    """A set whose data no longer matches its manifest (damaged on the bot host
    after its backup) fails its check on the backup host: the play fails saying
    so, and the copy's manifest is withdrawn there, so that it never stands as the
    series' newest copy (which would keep the next runs from sending it)."""
    src, dst, stage, argv = offsite["src"], offsite["dst"], offsite["stage"], offsite["argv"]
    oldest = sorted(scan(src)["sets"], key=lambda b: b["created_at"])[0]
    with open(oldest["path"], "ab") as handle:
        handle.write(b"damaged")
    rc, out, dummy = crashpoints.run_playbook(argv, [src, dst, stage], 0, str(tmp_path))
    assert rc != 0 and "its manifest there was withdrawn" in out, out[-3000:]
    catalog = scan(dst, verify_checksums=True)
    assert [b for b in catalog["sets"] if b["name"] == oldest["name"]] == [], catalog["sets"]
    assert all(b["checksums"] == "ok" for b in catalog["sets"])


def test_offsite_staging_directory_of_another_user_is_refused(offsite, tmp_path):
    """A staging directory another user made (who could read or swap what is
    staged there) stops the copy before anything is staged."""
    src, dst, stage, argv = offsite["src"], offsite["dst"], offsite["stage"], offsite["argv"]
    os.chown(stage, 1234, 1234)
    os.mkdir(os.path.join(stage, "bot1"))
    rc, out, calls = crashpoints.run_playbook(argv, [src, dst, stage], 0, str(tmp_path))
    assert rc != 0 and "belongs to uid 1234, not to the controller's user" in out, out[-3000:]
    assert not os.path.exists(dst) and os.listdir(os.path.join(stage, "bot1")) == []
