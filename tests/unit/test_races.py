# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Races: every writing module run twice (or more) at once on one database,
ledger or directory, and a bot-user process racing the root module over the
bot's data directory.

Each run is a real subprocess (``races.Run``). The race window is held open on
purpose, not left to luck: an audit hook in the test's subprocess only
(``races.Gate``) stops each run at the call where a second run would do harm -
just before a set's name is chosen, a ledger rewritten, a database swapped -
until every run that can get there is there. With the locks only one run ever
gets there at a time, and every invariant holds; with a lock that does nothing,
all of them get there together and an invariant breaks (see the mutation run in
the hardening issue).
"""

import datetime
import glob
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import textwrap
import time

import pytest
from dbtools import integrity, pg_query, sqlite_rows
from races import Gate, Run, environment, start_all

from ansible_collections.botops.runbook.plugins.module_utils._files import sha256_file
from ansible_collections.botops.runbook.plugins.module_utils._manifest import (
    backup_name,
    manifest_path,
    new_manifest,
    write_manifest,
)
from ansible_collections.botops.runbook.plugins.modules import (
    postgresql_backup, sqlite_backup, sqlite_check, sqlite_restore, sqlite_vacuum)

import botdb

# A run that meets another one's lock may give up, in these words - never with a traceback.
REFUSED = re.compile(r"another .+ (is|are) still running")
START = ("botops.start", "")  # the runner's own event, as the module's main() begins


def outcomes(runs, timeout=120):
    """The results of ``runs``: each a JSON result (the module ended by itself,
    never with a traceback), failed only with a clear 'another ... running'."""
    results = []
    for run in runs:
        rc, result, err = run.finish(timeout)
        assert result is not None and "Traceback" not in err, "%s ended without a result: rc %s\n%s" % (
            run.module, rc, err[-3000:])
        if result.get("failed"):
            assert REFUSED.search(result["msg"]), "%s failed: %s" % (run.module, result["msg"])
        results.append(result)
    return results


def race(module, arg_list, started, gate, rules, tmp_path, hold=0.8, then=None):
    """``arg_list`` runs of ``module`` started together; the gate opens (just after a
    second begins) once every run that can get to it has, at most ``hold`` seconds
    after the last one began; then the gate ``then`` (if any) the same way, at most
    ``hold`` seconds after it was first reached. Returns the runs and how many got
    to the (last) gate before it opened."""
    runs = start_all(module, arg_list, [started.mark(*START)] + rules, cwd=str(tmp_path))
    assert started.wait_arrived(len(runs), 60, runs) == len(runs), [r.finish() for r in runs]
    for step, deadline in ((gate, hold), (then, 30)):
        if step is None:
            continue
        if step.wait_arrived(1, deadline, runs):
            step.wait_arrived(len(runs), hold, runs)
        arrived = step.count()
        step.open(align=step is gate)
    return runs, arrived


def check_sets(results, directory):
    """Every reported set is there as reported, each its own, nothing half-made left."""
    made = [r for r in results if not r.get("failed")]
    assert made, "no run made a set"
    dests = [r["dest"] for r in made]
    assert len(set(dests)) == len(dests), "two runs reported the same set: %s" % dests
    for result in made:
        assert os.path.exists(result["dest"]) and os.path.exists(result["manifest"]), result
        with open(result["manifest"]) as handle:
            manifest = json.load(handle)
        if result.get("checksum"):
            assert sha256_file(result["dest"]) == result["checksum"], "the set at %s is not the one its run made" % (
                result["dest"])
            assert manifest["files"][0]["sha256"] == result["checksum"]
        for entry in manifest["files"]:
            assert sha256_file(os.path.join(os.path.dirname(result["dest"]), entry["name"])) == entry["sha256"]
    manifests = glob.glob(os.path.join(str(directory), "*.manifest.json"))
    assert sorted(manifests) == sorted(r["manifest"] for r in made)
    assert not [n for n in os.listdir(str(directory)) if n.endswith(".tmp")], os.listdir(str(directory))


def add_users(path, count):
    conn = sqlite3.connect(path)
    conn.executemany("INSERT INTO users (telegram_id, username) VALUES (?, 'later')",
                     [(800000 + i + int(time.time() * 1000) % 100000 * 10,) for i in range(count)])
    conn.commit()
    conn.close()


@pytest.fixture
def gates(tmp_path):
    return Gate(tmp_path, "started"), Gate(tmp_path, "window")


# -- sqlite_backup -------------------------------------------------------------

def test_sqlite_backups_at_once_make_distinct_sets_each_as_reported(bot_db, tmp_path, gates):
    """Three backups of one database into one directory, each held as it opens the
    database (before its lock), let go together just after a second begins, then
    held again once it has chosen its set's name, before it makes its first file:
    without the lock all three choose the same name in that second; with it each
    run's set is its own."""
    path = bot_db[0]
    backups = tmp_path / "backups"
    backups.mkdir()
    started, window = gates
    named = Gate(tmp_path, "named")
    args = {"path": path, "dest_dir": str(backups), "compression": "none"}
    runs, dummy = race("sqlite_backup", [args] * 3, started, window,
                       [window.rule("sqlite3.connect", re.escape(path)),
                        named.rule("open", re.escape(str(backups)) + r"/\.[^/]*\.tmp\b", writing=True)], tmp_path,
                       then=named)
    results = outcomes(runs)
    check_sets(results, backups)
    for result in [r for r in results if not r.get("failed")]:
        assert integrity(result["dest"]) == "ok"
        assert sqlite_rows(result["dest"]) == bot_db[1]


# -- sqlite_vacuum ---------------------------------------------------------------

def test_sqlite_maintenance_twice_at_once_and_a_backup_keep_the_database_sound(tmp_path, gates):
    """No lock of ours: SQLite's own locks order two VACUUMs and a backup's
    snapshot (busy_timeout). Both maintenance runs succeed, or one gives up in
    words; the database and the backup are sound and hold every row."""
    path = str(tmp_path / "bot_data.db")
    counts = botdb.create(path, journal_mode="wal")
    backups = tmp_path / "backups"
    backups.mkdir()
    started, window = gates
    vacuum = {"path": path, "operations": ["wal_checkpoint", "analyze", "vacuum"]}
    rules = [started.mark(*START), window.rule("sqlite3.connect", re.escape(path))]
    runs = start_all("sqlite_vacuum", [vacuum, vacuum], rules, cwd=str(tmp_path))
    runs.append(Run("sqlite_backup", {"path": path, "dest_dir": str(backups), "compression": "none"}, rules,
                    cwd=str(tmp_path)))
    assert started.wait_arrived(3, 60, runs) == 3
    window.wait_arrived(3, 5, runs)
    window.open(align=False)
    results = []
    for run in runs:
        rc, result, err = run.finish()
        assert result is not None and "Traceback" not in err, err
        if result.get("failed"):
            assert "locked" in result["msg"] and "busy_timeout" in result["msg"], result["msg"]
        results.append(result)
    assert not results[2].get("failed"), results[2]["msg"]
    for database in (path, results[2]["dest"]):
        rows = sqlite_rows(database)
        assert integrity(database) == "ok" and {table: rows[table] for table in counts} == counts


# -- sqlite_restore --------------------------------------------------------------

@pytest.fixture
def three_states(run_module, tmp_path):
    """A bot database (its users: ``now``) and two sets of earlier states, a and b."""
    path = str(tmp_path / "data" / "bot_data.db")
    os.mkdir(os.path.dirname(path))
    botdb.create(path, journal_mode="wal")
    backups = tmp_path / "backups"
    backups.mkdir()
    sets, users = {}, {}
    for name in ("a", "b"):
        add_users(path, 1)
        made = run_module(sqlite_backup, {"path": path, "dest": str(backups / ("%s.db" % name)),
                                          "compression": "none"})
        assert not made["failed"], made.get("msg")
        sets[name], users[name] = made["dest"], sqlite_rows(path)["users"]
    add_users(path, 1)
    users["now"] = sqlite_rows(path)["users"]
    return path, sets, users


def test_sqlite_restores_at_once_keep_every_safety_copy_and_end_as_one_set(three_states, tmp_path, gates):
    """Two restores of one database from different sets, each held just before it
    names its safety copy, let go together just after a second begins, then held
    again once it has named it, before it copies the database: both succeed; the
    database is one of the sets, sound; each safety copy is its own file, and the
    state before the restores survives in one of them."""
    path, sets, users = three_states
    started, window = gates
    named = Gate(tmp_path, "named")
    opened = r"^file:/*%s\?mode=rw" % re.escape(path.lstrip("/"))  # the database, to copy it
    runs, dummy = race("sqlite_restore", [{"src": sets["a"], "path": path}, {"src": sets["b"], "path": path}],
                       started, window,
                       [window.rule("os.chown", r"/candidate\b"), named.rule("sqlite3.connect", opened)], tmp_path,
                       then=named)
    results = outcomes(runs)
    assert all(not r.get("failed") and r["changed"] for r in results), results
    assert integrity(path) == "ok"
    assert sha256_file(path) in {r["checksum"] for r in results}
    assert sqlite_rows(path)["users"] in (users["a"], users["b"])
    copies = [r["safety_copy"] for r in results]
    assert len(set(copies)) == 2, "two restores kept their safety copies under one name: %s" % copies
    kept = sorted(sqlite_rows(copy)["users"] for copy in copies)
    last = sqlite_rows(path)["users"]
    assert kept == sorted([users["now"], users["a"] if last == users["b"] else users["b"]]), (kept, users, last)
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.startswith(".botops-")]


def test_a_restore_waits_for_a_backup_of_the_same_database(three_states, tmp_path, gates):
    """A backup holds the database open (its lock taken, its copy half made) when
    a restore of that database starts: the restore waits for it instead of
    refusing because 'python3' has the database open, then restores; the backup
    holds the state before the restore."""
    path, sets, users = three_states
    backups = tmp_path / "more"
    backups.mkdir()
    dummy, window = gates
    backup = Run("sqlite_backup", {"path": path, "dest_dir": str(backups), "compression": "none"},
                 [window.rule("sqlite3.connect", r"/\.[^/]*\.tmp\b")], cwd=str(tmp_path))
    assert window.wait_arrived(1, 60, [backup]) == 1, backup.finish()
    restore = Run("sqlite_restore", {"src": sets["a"], "path": path}, cwd=str(tmp_path))
    deadline = time.monotonic() + 2.5
    while restore.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    window.open(align=False)
    made, restored = outcomes([backup, restore])
    assert not restored.get("failed") and restored["changed"], restored
    assert not made.get("failed"), made
    check_sets([made], backups)
    assert sqlite_rows(made["dest"])["users"] == users["now"]
    assert sqlite_rows(path)["users"] == users["a"] and integrity(path) == "ok"


def test_a_backup_that_waited_for_a_restore_holds_the_restored_database(three_states, tmp_path, gates):
    """The other way round: a restore holds the lock (its candidate made, about to
    swap) when a backup of that database starts. The backup waits for the lock;
    what it then copies must be the restored database, not the one it replaced."""
    path, sets, users = three_states
    backups = tmp_path / "more"
    backups.mkdir()
    dummy, window = gates
    restore = Run("sqlite_restore", {"src": sets["a"], "path": path}, [window.rule("os.chown", r"/candidate\b")],
                  cwd=str(tmp_path))
    assert window.wait_arrived(1, 60, [restore]) == 1, restore.finish()
    backup = Run("sqlite_backup", {"path": path, "dest_dir": str(backups), "compression": "none", "journal_mode": "wal"},
                 cwd=str(tmp_path))
    deadline = time.monotonic() + 1.5
    while backup.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    window.open(align=False)
    restored, made = outcomes([restore, backup])
    assert not restored.get("failed") and not made.get("failed"), (restored, made)
    assert sqlite_rows(path)["users"] == users["a"]
    assert sqlite_rows(made["dest"])["users"] == users["a"], "the backup holds the database from before the restore"
    # journal_mode wal applied to the database the restore left, and reported of it
    assert made["journal_mode"] == "wal" and sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


# -- deploy_ledger ---------------------------------------------------------------

def test_deploy_ledger_records_at_once_lose_no_entry(tmp_path, gates):
    """Four runs record in one ledger, each held just before it writes the new
    ledger (every one having read it): every entry recorded is in the ledger,
    the two updates of one entry merged."""
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text(json.dumps({"id": "e0", "kind": "deploy", "outcome": "in_progress"}) + "\n")
    started, window = gates
    entries = [{"id": "e1", "kind": "deploy"}, {"id": "e2", "kind": "rollback"},
               {"id": "e0", "outcome": "success"}, {"id": "e0", "message": "switched"}]
    runs, dummy = race("deploy_ledger", [{"path": str(ledger), "state": "present", "entry": e} for e in entries],
                       started, window, [window.rule("open", r"/\.ledger\.jsonl\.[^/]*\.tmp\b", writing=True)],
                       tmp_path)
    results = outcomes(runs)
    assert all(not r.get("failed") and r["changed"] for r in results), [
        (r.get("msg"), r.get("changed"), r.get("entry")) for r in results]
    with open(str(ledger)) as handle:
        recorded = {entry["id"]: entry for entry in map(json.loads, handle)}
    assert sorted(recorded) == ["e0", "e1", "e2"], "entries were lost: %s" % sorted(recorded)
    assert recorded["e0"] == {"id": "e0", "kind": "deploy", "outcome": "success", "message": "switched"}
    for entry, result in zip(entries, results):  # what each run set is there (later runs set other keys)
        assert all(result["entry"][k] == v and recorded[entry["id"]][k] == v for k, v in entry.items())
    assert not [n for n in os.listdir(str(tmp_path)) if n.endswith(".tmp")]


# -- backup_prune ----------------------------------------------------------------

@pytest.fixture
def series_dir(tmp_path):
    """A database, and a directory with two sets of it made hours ago (bot ``racebot``)."""
    path = str(tmp_path / "bot_data.db")
    botdb.create(path, journal_mode="wal")
    backups = tmp_path / "backups"
    backups.mkdir()
    for hours_ago in (2, 3):
        created = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(
            hours=hours_ago)
        made = str(backups / backup_name("bot_data", created, ".db", "none"))
        shutil.copyfile(path, made)
        manifest = new_manifest("sqlite", "bot_data", created, bot="racebot")
        manifest.update(files=[{"name": os.path.basename(made), "size": os.path.getsize(made),
                                "sha256": sha256_file(made)}], verified={"method": "quick_check", "ok": True})
        write_manifest(manifest_path(made), manifest)
    return path, backups


@pytest.mark.parametrize("scenario", ["unknown", "grace"])
def test_a_prune_never_breaks_the_set_a_backup_is_committing(series_dir, tmp_path, gates, scenario):
    """A backup is committing its set when a prune (keep the newest) runs in its
    directory - "unknown": the backup has published its file and is about to put
    its manifest in place, the prune (deleting files no manifest lists) has just
    listed the directory; "grace": the backup is about to publish its file, the
    prune deletes leftover temporary files of any age. The prune waits for the
    set to be committed: both succeed, and the new set is whole and kept."""
    path, backups = series_dir
    held, window = Gate(tmp_path, "commit"), gates[1]
    renamed = r"\.db\.manifest\.json\.[^./ ]+\.tmp " if scenario == "unknown" else r"\.db\.[^./ ]+\.tmp "
    backup = Run("sqlite_backup", {"path": path, "dest_dir": str(backups), "compression": "none", "bot": "racebot"},
                 [held.rule("os.rename", "^%s/\\.[^/ ]+%s" % (re.escape(str(backups)), renamed))], cwd=str(tmp_path))
    assert held.wait_arrived(1, 60, [backup]) == 1, backup.finish()
    args = {"path": str(backups), "keep_last": 1}
    rules = []
    if scenario == "unknown":
        args["prune_unknown"] = True
        rules = [window.rule("open", r"\.manifest\.json\.[^/ ]*\.tmp\b", writing=False)]
    else:
        args["temporary_grace"] = "0s"
    prune = Run("backup_prune", args, rules, cwd=str(tmp_path))
    deadline = time.monotonic() + 2.5
    while prune.running() and window.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    held.open(align=False)
    made = outcomes([backup])[0]
    window.open(align=False)
    pruned = outcomes([prune])[0]
    assert not made.get("failed") and not pruned.get("failed"), (made, pruned)
    check_sets([made], backups)  # the new set, whole; the old ones pruned
    assert [k["path"] for k in pruned["kept"]] == [made["dest"]]


def test_prunes_at_once_both_succeed(series_dir, tmp_path, gates):
    """Two prunes of one directory, each held at its first deletion: the second
    waits for the first and finds nothing left to delete, instead of failing on
    a file the first has just deleted."""
    path, backups = series_dir
    started, window = gates
    prune = {"path": str(backups), "keep_last": 1}
    runs, dummy = race("backup_prune", [prune, prune], started, window,
                       [window.rule("os.remove", re.escape(str(backups)))], tmp_path)
    results = outcomes(runs)
    assert all(not r.get("failed") for r in results), results
    assert sorted(len(r["deleted"]) for r in results) == [0, 1]
    assert [len(r["kept"]) for r in results] == [1, 1]
    assert len(glob.glob(str(backups / "*.manifest.json"))) == 1


# -- PostgreSQL ------------------------------------------------------------------

def test_postgresql_backups_at_once_make_distinct_sets(pg_params, tmp_path, gates):
    """Two dumps of one database into one directory, each held as it checks its
    pg_dump (before its locks), let go together just after a second begins, then
    held again once it has chosen its set's name, before it makes its first file:
    two sets, each as reported (the advisory lock orders the dumps, the
    directory's lock the names)."""
    backups = tmp_path / "backups"
    backups.mkdir()
    started, window = gates
    named = Gate(tmp_path, "named")
    args = dict(pg_params, dest_dir=str(backups), compression="gzip")
    runs, dummy = race("postgresql_backup", [args, args], started, window,
                       [window.rule("subprocess.Popen", r"pg_dump"),
                        named.rule("open", re.escape(str(backups)) + r"/\.[^/]*\.tmp\b", writing=True)], tmp_path,
                       then=named)
    check_sets(outcomes(runs), backups)


@pytest.fixture
def pg_admin(pg_botdb):
    return {"login_host": pg_botdb["host"], "login_port": pg_botdb["port"], "login_user": "postgres",
            "login_password": pg_botdb["superuser_password"], "db": pg_botdb["app_db"]}


def test_postgresql_restores_at_once_into_one_new_database(run_module, pg_botdb, pg_admin, tmp_path, gates):
    """Two restores of one dump into one new database, each held as pg_restore
    starts: one restores, the other finds it restored from the same backup
    (changed=false) - neither drops the other's database half-way."""
    backups = tmp_path / "backups"
    backups.mkdir()
    made = run_module(postgresql_backup, dict(pg_admin, dest_dir=str(backups), row_counts="exact"))
    assert not made["failed"], made.get("msg")
    target = "botops_race_%s" % os.urandom(3).hex()
    started, window = gates
    args = dict(pg_admin, src=made["dest"], target_db=target)
    try:
        runs, dummy = race("postgresql_restore", [args, args], started, window,
                           [window.rule("subprocess.Popen", r"pg_restore.*--exit-on-error")], tmp_path, hold=1.5)
        results = outcomes(runs)
        assert all(not r.get("failed") for r in results), [r.get("msg") for r in results]
        assert sorted(r["changed"] for r in results) == [False, True]
        restored = [r for r in results if r["changed"]][0]
        assert restored["tables"] == made["tables"]
        rows = pg_query(pg_botdb, target, "SELECT count(*) FROM pgbench_accounts")[0][0]
        assert rows == made["tables"]["public.pgbench_accounts"]
    finally:
        pg_query(pg_botdb, "postgres", 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % target)


# -- the bot's user racing root over the bot's data directory --------------------

RACER = textwrap.dedent("""
    import os, sys, time
    data, victim, stop = sys.argv[1:4]
    stem = "bot_data"
    seen = set()

    def plant(name):
        try:
            os.symlink(victim, os.path.join(data, name))
        except OSError:
            pass

    def replace(name):  # over whatever is there, a safety copy too
        temp = os.path.join(data, ".racer-%d" % os.getpid())
        try:
            os.symlink(victim, temp)
            os.rename(temp, os.path.join(data, name))
        except OSError:
            pass

    def unplant(name):
        full = os.path.join(data, name)
        if os.path.islink(full):
            try:
                os.unlink(full)
            except OSError:
                pass

    tick, swapped = 0, 0
    while not os.path.exists(stop):
        tick += 1
        now = time.time()
        for delta in (-1, 0, 1):
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now + delta))
            for suffix in (".db", "-2.db", ".db-wal"):
                replace("%s.pre-restore-%s%s" % (stem, stamp, suffix))
        for name in os.listdir(data):
            if name.startswith(".botops-restore-") and name.endswith(".tmp") and name not in seen:
                seen.add(name)
                try:  # the staging directory moved away, a directory of symlinks in its place
                    os.rename(os.path.join(data, name), os.path.join(data, name + ".moved"))
                    os.mkdir(os.path.join(data, name))
                    swapped += 1
                    for planted in ("candidate", "safety", "safety-wal", "decrypted", "put-back"):
                        os.symlink(victim, os.path.join(data, name, planted))
                except OSError:
                    pass
        for side in ("-wal", "-shm", "-journal"):
            (plant if tick % 4 == 0 else unplant)(stem + ".db" + side)
        time.sleep(0.005)
    print(swapped)
""")


def changed(path):
    """A row more in the bot's database, as the bot's user (its directory is being raced)."""
    for dummy in range(100):
        if subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", textwrap.dedent("""
                import sqlite3, sys
                conn = sqlite3.connect(sys.argv[1], timeout=5)
                conn.execute("INSERT INTO users (telegram_id, username) VALUES (abs(random()) % 1000000000, 'x')")
                conn.commit()
                """), path], capture_output=True, check=False).returncode == 0:
            return
        time.sleep(0.01)
    raise AssertionError("cannot write the bot's database")


def test_a_bot_user_racing_root_never_gets_a_root_only_file_read_written_or_chowned(run_module, tmp_path):
    """While root backs up and restores the bot's database, the bot's user keeps
    planting symlinks to a root-only file under every name it can guess in its own
    data directory (side files, safety copies, the staging directory's files). Each
    root run succeeds or fails in words; the root-only file is never read into
    any file, never written, chowned or chmodded."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"):
        pytest.skip("switching to another user needs root and a system python3")
    shared = tempfile.mkdtemp(prefix="botops-race-", dir="/tmp")  # traversable by 'nobody'
    try:
        os.chmod(shared, 0o755)
        data = os.path.join(shared, "data")
        os.mkdir(data)
        path = os.path.join(data, "bot_data.db")
        botdb.create(path, journal_mode="delete")
        backups = os.path.join(shared, "backups")
        os.mkdir(backups, 0o700)
        made = run_module(sqlite_backup, {"path": path, "dest": os.path.join(backups, "before.db"),
                                          "compression": "gzip"})
        assert not made["failed"], made.get("msg")
        for name in (data, path):
            os.chown(name, 65534, 65534)
        secret = "root-only %s" % os.urandom(8).hex()
        victim = os.path.join(shared, "root-only.txt")
        with open(victim, "w") as handle:
            handle.write(secret * 100)
        os.chmod(victim, 0o600)
        before = os.stat(victim)
        victim_sha = sha256_file(victim)
        stop = os.path.join(shared, "stop")
        racer = subprocess.Popen(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", RACER, data, victim,
                                  stop], env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            results = []
            for dummy in range(4):
                changed(path)  # the restore has something to replace
                runs = [Run("sqlite_backup", {"path": path, "dest_dir": backups, "compression": "none"}),
                        Run("sqlite_restore", {"src": made["dest"], "path": path})]
                for run in runs:
                    rc, result, err = run.finish()
                    assert result is not None and "Traceback" not in err, (rc, err[-3000:])
                    assert not result.get("failed") or result["msg"], result
                    results.append((run.module, result))
        finally:
            with open(stop, "w"):
                pass
            out, err = racer.communicate(timeout=30)
        assert racer.returncode == 0, err
        assert int(out) > 0, "the racer never got at a staging directory"
        after = os.stat(victim)
        assert sha256_file(victim) == victim_sha, "the root-only file was written"
        assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (0, 0, 0o600), "chowned or chmodded"
        assert after.st_mtime_ns == before.st_mtime_ns
        for directory, dummy, files in os.walk(shared):
            for name in files:
                full = os.path.join(directory, name)
                if os.path.islink(full) or full == victim:
                    continue
                with open(full, "rb") as handle:
                    assert secret.encode() not in handle.read(), "the root-only file was read into %s" % full
        for module, result in results:
            if module == "sqlite_backup" and not result.get("failed"):
                assert integrity(result["dest"]) == "ok"
        assert any(not r.get("failed") for m, r in results), [r.get("msg") for m, r in results]
    finally:
        shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture
def planted(run_module, tmp_path):
    """The racer's ways in, one at a time: a database and a set of it, and a root-only file."""
    data = tmp_path / "data"
    data.mkdir()
    path = str(data / "bot_data.db")
    botdb.create(path, journal_mode="delete")
    made = run_module(sqlite_backup, {"path": path, "dest": str(tmp_path / "set.db"), "compression": "none"})
    assert not made["failed"], made.get("msg")
    add_users(path, 1)
    victim = tmp_path / "root-only.txt"
    secret = ("root-only %s" % os.urandom(8).hex()).encode()
    victim.write_bytes(secret * 100)
    os.chmod(str(victim), 0o600)
    return path, made["dest"], str(victim), secret


def assert_never_read(directory, victim, secret):
    for name in os.listdir(directory):
        full = os.path.join(directory, name)
        if os.path.isfile(full) and not os.path.islink(full):
            with open(full, "rb") as handle:
                assert secret not in handle.read(), "the root-only file was read into %s" % full
    assert open(victim, "rb").read() == secret * 100


def test_a_safety_copy_of_a_database_sqlite_cannot_read_never_follows_a_planted_side_file(run_module, planted):
    """Symlinks planted as -journal (SQLite then refuses the database, so the safety
    copy is a copy of its bytes), -wal and -shm: the copy leaves the symlinks out."""
    path, src, victim, secret = planted
    for side in ("-journal", "-wal", "-shm"):
        os.symlink(victim, path + side)
    result = run_module(sqlite_restore, {"src": src, "path": path})
    assert not result["failed"], result["msg"]
    assert_never_read(os.path.dirname(path), victim, secret)
    assert not [n for n in os.listdir(os.path.dirname(path)) if n.endswith(("-wal", "-shm"))]


def test_a_failed_restore_never_puts_back_a_safety_copy_replaced_by_a_symlink(run_module, planted, monkeypatch):
    """The check after the swap fails, and the safety copy's name is a symlink by
    then: nothing is put back through it, and the error says so."""
    path, src, victim, secret = planted
    real = sqlite_restore.check_restored

    def replaced_then_check(path, quick, back, temp, attributes):
        os.unlink(back)
        os.symlink(victim, back)
        monkeypatch.setattr(sqlite_restore, "integrity_check", lambda conn, quick: (False, ["damaged"]))
        return real(path, quick, back, temp, attributes)

    monkeypatch.setattr(sqlite_restore, "check_restored", replaced_then_check)
    result = run_module(sqlite_restore, {"src": src, "path": path})
    assert result["failed"] and "is now a symlink, which is not followed: nothing was put back" in result["msg"]
    assert_never_read(os.path.dirname(path), victim, secret)


@pytest.fixture
def victim_db(tmp_path):
    """A root-only SQLite database of someone else (another bot's), holding a secret."""
    victim = str(tmp_path / "other-bot.db")
    secret = "secret %s" % os.urandom(8).hex()
    conn = sqlite3.connect(victim)
    conn.execute("CREATE TABLE s (v TEXT)")
    conn.execute("INSERT INTO s VALUES (?)", (secret,))
    conn.commit()
    conn.close()
    os.chmod(victim, 0o600)
    return victim, secret, sha256_file(victim)


def nothing_holds(directory, secret):
    for name in os.listdir(directory):
        with open(os.path.join(directory, name), "rb") as handle:
            assert secret.encode() not in handle.read(), "the other database was copied into %s" % name


def test_a_database_path_that_is_a_symlink_is_never_followed(run_module, tmp_path, victim_db):
    """The bot (uid 65534 here) points its database's name, or a directory on the
    way to it, at a root-only database: backup, check and vacuum (run as root)
    refuse it, copy and change nothing. A symlink only root could have made is
    followed."""
    victim, secret, checksum = victim_db
    data = tmp_path / "data"
    data.mkdir()
    os.chown(str(data), 65534, 65534)
    final = str(data / "bot_data.db")
    os.symlink(victim, final)
    os.symlink(os.path.dirname(victim), str(data / "sub"))
    through_dir = str(data / "sub" / os.path.basename(victim))
    backups = tmp_path / "backups"
    backups.mkdir()
    for path, link in ((final, final), (through_dir, str(data / "sub"))):
        for module, args in ((sqlite_backup, {"dest_dir": str(backups)}), (sqlite_check, {}),
                             (sqlite_vacuum, {"operations": ["vacuum", "analyze"]})):
            result = run_module(module, dict(args, path=path))
            assert result["failed"] and "'%s' is a symlink" % link in result["msg"] and path in result["msg"], (
                module, result)
    assert os.listdir(str(backups)) == [] and sha256_file(victim) == checksum
    trusted = tmp_path / "root-only"
    trusted.mkdir(mode=0o755)
    os.symlink(victim, str(trusted / "bot_data.db"))
    made = run_module(sqlite_backup, {"path": str(trusted / "bot_data.db"), "dest_dir": str(backups)})
    assert not made["failed"], made["msg"]


def test_a_symlink_swapped_in_as_the_backup_opens_the_database_is_refused(tmp_path, gates, victim_db):
    """The name is a plain database when it is checked and a symlink to another
    database when SQLite opens it (held at that open): refused, nothing copied."""
    victim, secret, checksum = victim_db
    data = tmp_path / "data"
    data.mkdir()
    path = str(data / "bot_data.db")
    botdb.create(path, journal_mode="wal")
    os.chown(str(data), 65534, 65534)  # the bot's: a symlink there is someone else's
    backups = tmp_path / "backups"
    backups.mkdir()
    dummy, window = gates
    run = Run("sqlite_backup", {"path": path, "dest_dir": str(backups)}, [window.rule("sqlite3.connect", re.escape(path))],
              cwd=str(tmp_path))
    assert window.wait_arrived(1, 60, [run]) == 1, run.finish()
    os.symlink(victim, path + ".swap")
    os.rename(path + ".swap", path)
    window.open(align=False)
    rc, result, err = run.finish(120)
    assert result and result.get("failed") and "was replaced while it was being opened" in result["msg"], (result, err)
    nothing_holds(str(backups), secret)
    assert sha256_file(victim) == checksum
