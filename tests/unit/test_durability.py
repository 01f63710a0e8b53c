# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What survives a power cut: the order of each writing operation's system calls.

A killed process keeps the page cache, so the kill tests (test_crashpoints.py)
cannot see a missing fsync; a power cut can. Here each writing operation runs
once in a subprocess under strace (the way tests/support/crashpoints.py runs a
module), and its calls (tests/support/syscalls.py) must show, for every file it
publishes under a final name:

1. its data written to a temporary file (beside it, or in a private staging
   directory on the same file system);
2. that file fsynced (fsync or fdatasync of a descriptor of it) after its last
   write, and nothing written to it afterwards;
3. then renamed to its final name;
4. then its directory fsynced (a descriptor of the parent opened O_DIRECTORY).

and for a backup set, its manifest renamed into place only after every data
file's step 4. A deletion is durable the same way: its directory fsynced after
the unlink, before the next step that relies on it.

strace comes from scripts/setup.sh; without it these tests skip, except in CI
(CI set), where a missing strace fails them.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest
import crashpoints
import syscalls

from ansible_collections.botops.runbook.plugins.module_utils._manifest import MANIFEST_SUFFIX


def in_ci():
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def find_strace():
    """strace's path; a skip with the reason where it is missing, a failure in CI."""
    path = shutil.which("strace")
    if path:
        return path
    message = "strace is not installed: scripts/setup.sh packages installs it (Debian package strace)"
    if in_ci():
        pytest.fail(message + "; CI must run the durability tests")
    pytest.skip(message)
    return None


@pytest.fixture
def traced(tmp_path):
    """traced(module, args) -> (module result, Trace of its run under strace)."""
    strace = find_strace()
    runs = []

    def run(module, args):
        log = str(tmp_path / ("strace-%s-%d.log" % (module, len(runs))))
        runs.append(log)
        rc, result, dummy = crashpoints.run(module, args, 0, str(tmp_path), wrap=syscalls.strace_argv(log, strace))
        if rc != 0 and not os.path.exists(log):
            pytest.fail("strace could not run %s (rc=%d); ptrace may be forbidden here" % (module, rc))
        assert rc == 0 and result and not result.get("failed"), "%s failed (rc=%d): %s" % (
            module, rc, (result or {}).get("msg"))
        return result, syscalls.Trace.read(log, cwd=os.getcwd())

    return run


# -- the power-cut model --------------------------------------------------------
class Published:
    """How ``final`` was published: its temporary name, last write, fsync, rename
    and the fsync of its directory after the rename (events of the trace)."""

    def __init__(self, final, temp, last_write, sync, rename, dir_sync):
        self.final, self.temp, self.last_write = final, temp, last_write
        self.sync, self.rename, self.dir_sync = sync, rename, dir_sync


def dir_synced_after(trace, directory, event):
    """The first fsync of ``directory`` (opened O_DIRECTORY) that began after ``event`` returned."""
    syncs = [e for e in trace.of("sync", path=directory) if e.directory and event.before(e)]
    return syncs[0] if syncs else None


def published(trace, final):
    """Steps 1-4 of the module docstring for the file ``final``; the events, or an
    AssertionError that names the missing step."""
    renames = trace.of("rename", target=final)
    assert renames, "nothing was renamed to %s; the renames: %r" % (final, trace.of("rename"))
    rename = renames[-1]
    temp = rename.path
    writes = trace.of("write", path=temp)
    assert writes, "no data was written to %s (published as %s)" % (temp, final)
    late = [w for w in writes if not w.before(rename)] + [w for w in trace.of("write", path=final)
                                                          if rename.before(w) or not w.before(rename)]
    assert not late, "%s was written after (or during) its rename to %s: %r" % (temp, final, late)
    last = max(writes, key=lambda e: e.end)
    syncs = [s for s in trace.of("sync", path=temp) if last.before(s) and s.before(rename)]
    assert syncs, ("%s was not fsynced between its last write (%r) and its rename to %s (%r); its fsyncs: %r"
                   % (temp, last, final, rename, trace.of("sync", path=temp, ok=None)))
    directory = os.path.dirname(final)
    dir_sync = dir_synced_after(trace, directory, rename)
    assert dir_sync, ("directory %s was not fsynced after %s was renamed into it (%r); its fsyncs: %r"
                      % (directory, final, rename, trace.of("sync", path=directory, ok=None)))
    return Published(final, temp, last, syncs[-1], rename, dir_sync)


def published_directory(trace, final):
    """A directory published whole (a directory dump): each file in it written and
    fsynced, the directory itself fsynced (its entries), all before it is renamed
    to ``final``; then the parent fsynced."""
    renames = trace.of("rename", target=final)
    assert renames, "nothing was renamed to %s" % final
    rename = renames[-1]
    temp = rename.path
    names = sorted(os.listdir(final))
    assert names, "%s is empty" % final
    for name in names:
        path = os.path.join(temp, name)
        writes = [w for w in trace.of("write", path=path) if w.before(rename)]
        assert writes, "no data was written to %s" % path
        last = max(writes, key=lambda e: e.end)
        assert [s for s in trace.of("sync", path=path) if last.before(s) and s.before(rename)], \
            "%s was not fsynced between its last write and the rename of its directory to %s" % (path, final)
        last_create = max(e.end for e in trace.of("open", path=path) if "O_CREAT" in e.flags)
        assert [s for s in trace.of("sync", path=temp) if s.start > last_create and s.before(rename)], \
            "directory %s was not fsynced after %s was made in it, before its rename to %s" % (temp, name, final)
    dir_sync = dir_synced_after(trace, os.path.dirname(final), rename)
    assert dir_sync, "directory %s was not fsynced after %s was renamed into it" % (os.path.dirname(final), final)
    return Published(final, temp, None, None, rename, dir_sync)


def published_set(trace, manifest):
    """A backup set: each file its manifest lists published (steps 1-4), then the
    manifest published too, its rename after every data file's directory fsync.
    Returns {final path: Published}, the manifest's included."""
    with open(manifest) as handle:
        listed = json.load(handle)["files"]
    directory = os.path.dirname(manifest)
    data = {}
    for entry in listed:
        name = entry["name"].split("/")[0]  # a directory dump lists <dir>/<file>
        final = os.path.join(directory, name)
        if final not in data:
            data[final] = published_directory(trace, final) if os.path.isdir(final) else published(trace, final)
    done = published(trace, manifest)
    for final, steps in data.items():
        assert steps.dir_sync.before(done.rename), (
            "the manifest %s was renamed into place (%r) before %s was durable (its directory fsync %r)"
            % (manifest, done.rename, final, steps.dir_sync))
    data[manifest] = done
    return data


def durable_removal(trace, path, before=None):
    """``path`` was unlinked, then its directory fsynced (before the event ``before``)."""
    unlinks = trace.of("unlink", path=path) + trace.of("rmdir", path=path)
    assert unlinks, "%s was not removed" % path
    sync = dir_synced_after(trace, os.path.dirname(path), unlinks[-1])
    assert sync, "directory %s was not fsynced after %s was removed" % (os.path.dirname(path), path)
    if before is not None:
        assert sync.before(before), ("the removal of %s was not durable (directory fsync %r) before %r"
                                     % (path, sync, before))
    return sync


# -- the parser reads this strace -----------------------------------------------
SNIPPET = r"""
import os, sys, threading
directory, name = sys.argv[1], sys.argv[2]
temp, final = os.path.join(directory, "." + name + ".tmp"), os.path.join(directory, name)
fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, b"data")
worker = threading.Thread(target=os.fsync, args=(fd,))
worker.start()
worker.join()
os.close(fd)
os.replace(temp, final)
dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
os.fsync(dfd)
os.close(dfd)
"""


def test_the_parser_reads_this_strace(tmp_path):
    """A name with every character strace escapes, an fsync from another thread."""
    strace = find_strace()
    log = str(tmp_path / "snippet.log")
    name = 'q"b\\s\n\xe9<>7\t\x01x 1'
    subprocess.run(syscalls.strace_argv(log, strace) + [sys.executable, "-c", SNIPPET, str(tmp_path), name],
                   check=True)
    trace = syscalls.Trace.read(log)
    final = str(tmp_path / name)
    steps = published(trace, final)
    assert steps.temp == str(tmp_path / ("." + name + ".tmp"))
    assert steps.sync.pid != steps.rename.pid  # the worker thread's fsync, through the shared descriptor table
    assert steps.dir_sync.directory is True


# -- each writing operation ---------------------------------------------------------
@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_sqlite_backup(traced, bot_db, tmp_path, compression):
    path, dummy = bot_db
    out = tmp_path / "out"
    out.mkdir()
    result, trace = traced("sqlite_backup", {"path": path, "dest_dir": str(out), "compression": compression})
    steps = published_set(trace, result["manifest"])
    assert set(steps) == {result["dest"], result["manifest"]}


def test_sqlite_backup_encrypted(traced, bot_db, tmp_path):
    if not shutil.which("age-keygen"):
        if in_ci():
            pytest.fail("age is not installed; scripts/setup.sh installs it")
        pytest.skip("age is not installed: scripts/setup.sh installs it")
    key = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                               text=True).stdout.strip()
    out = tmp_path / "out"
    out.mkdir()
    result, trace = traced("sqlite_backup", {"path": bot_db[0], "dest_dir": str(out), "compression": "zstd",
                                             "encrypt_to": [recipient]})
    assert result["dest"].endswith(".age")
    steps = published_set(trace, result["manifest"])
    writers = {w.pid for w in trace.of("write", path=steps[result["dest"]].temp)}
    assert writers and all(pid != steps[result["dest"]].rename.pid for pid in writers)  # age wrote it


def test_sqlite_backup_replacing_a_set(traced, bot_db, tmp_path):
    """dest given twice: the old manifest's removal is durable before new data takes the name."""
    out = tmp_path / "out"
    out.mkdir()
    args = {"path": bot_db[0], "dest": str(out / "fixed.db.zst"), "compression": "zstd"}
    traced("sqlite_backup", args)
    result, trace = traced("sqlite_backup", args)
    steps = published_set(trace, result["manifest"])
    durable_removal(trace, result["manifest"], before=steps[result["dest"]].rename)


def restore_setup(run_module, bot_db, tmp_path):
    """A backup set of ``bot_db``, then the live database changed and held open (its
    -wal and -shm present, as under a running bot)."""
    from ansible_collections.botops.runbook.plugins.modules import sqlite_backup  # pylint: disable=import-outside-toplevel
    path, dummy = bot_db
    out = tmp_path / "out"
    out.mkdir()
    made = run_module(sqlite_backup, {"path": path, "dest_dir": str(out), "compression": "zstd"})
    assert not made["failed"], made.get("msg")
    live = sqlite3.connect(path)
    live.execute("PRAGMA journal_mode = WAL")
    live.execute("DELETE FROM messages WHERE id > 10")
    live.commit()
    assert os.path.exists(path + "-wal") and os.path.exists(path + "-shm")
    return made, live


def test_sqlite_restore_over_a_live_database(traced, run_module, bot_db, tmp_path):
    """The safety copy and the restored database are each published (steps 1-4)."""
    made, live = restore_setup(run_module, bot_db, tmp_path)
    path = bot_db[0]
    try:
        result, trace = traced("sqlite_restore", {"src": made["dest"], "path": path, "force": True})
    finally:
        live.close()
    assert result["changed"] and result["safety_copy"]
    safety = published(trace, result["safety_copy"])
    restored = published(trace, path)
    assert safety.dir_sync.before(restored.rename)  # the old data is safe before it is replaced
    assert os.path.dirname(restored.temp) != os.path.dirname(path)  # unpacked in the private staging directory


def test_sqlite_restore_stale_side_files_are_gone_for_good_first(traced, run_module, bot_db, tmp_path):
    made, live = restore_setup(run_module, bot_db, tmp_path)
    path = bot_db[0]
    try:
        dummy, trace = traced("sqlite_restore", {"src": made["dest"], "path": path, "force": True})
    finally:
        live.close()
    rename = trace.of("rename", target=path)[-1]
    removed = [e for e in trace.of("unlink") if e.path in (path + "-wal", path + "-shm") and e.before(rename)]
    assert len(removed) == 2, removed
    for unlink in removed:
        durable_removal(trace, unlink.path, before=rename)


@pytest.mark.parametrize("fmt", ["custom", "directory"])
def test_postgresql_backup(traced, pg_params, pg_botdb, tmp_path, fmt):
    """A custom dump with its globals (pg_dumpall needs the superuser), and a directory dump."""
    out = tmp_path / "out"
    out.mkdir()
    args = dict(pg_params, dest_dir=str(out), format=fmt)
    if fmt == "custom":
        args.update(compression="zstd", globals=True, login_user="postgres", login_password=pg_botdb["superuser_password"])
    result, trace = traced("postgresql_backup", args)
    steps = published_set(trace, result["manifest"])
    assert result["dest"] in steps and len(steps) == (3 if fmt == "custom" else 2)


def make_sets(run_module, bot_db, out, count):
    from ansible_collections.botops.runbook.plugins.modules import sqlite_backup  # pylint: disable=import-outside-toplevel
    made = []
    for dummy in range(count):
        result = run_module(sqlite_backup, {"path": bot_db[0], "dest_dir": str(out), "compression": "zstd"})
        assert not result["failed"], result.get("msg")
        made.append(result)
    return made


def test_backup_prune(traced, run_module, bot_db, tmp_path):
    """Of each deleted set, its data file is gone for good (directory fsynced)
    before its manifest is removed, and the manifest's removal is durable before
    the module returns; so is a stale temporary file's."""
    out = tmp_path / "out"
    out.mkdir()
    made = make_sets(run_module, bot_db, out, 3)
    stale = out / ".bot_data_20200101T000000Z.db.zst.abcd1234.tmp"
    stale.write_bytes(b"left by a killed run")
    old = time.time() - 3 * 86400
    os.utime(str(stale), (old, old))
    result, trace = traced("backup_prune", {"path": str(out), "keep_last": 1})
    assert result["changed"] and len(result["deleted"]) == 2
    assert os.path.exists(made[-1]["dest"])
    for backup in made[:-1]:
        manifest = backup["dest"] + MANIFEST_SUFFIX
        assert manifest == backup["manifest"] and not os.path.exists(manifest)
        unlink_manifest = trace.of("unlink", path=manifest)[-1]
        durable_removal(trace, backup["dest"], before=unlink_manifest)
        durable_removal(trace, manifest)
    durable_removal(trace, str(stale))


@pytest.mark.parametrize("existing", [False, True], ids=["new", "replaced"])
def test_deploy_ledger(traced, tmp_path, existing):
    path = tmp_path / "ledger.jsonl"
    if existing:
        path.write_text(json.dumps({"id": "d1", "release": "r1", "outcome": "success"}) + "\n")
    entry = {"id": "d2", "release": "r2", "kind": "deploy", "outcome": "in_progress"}
    result, trace = traced("deploy_ledger", {"path": str(path), "state": "present", "entry": entry})
    assert result["changed"]
    published(trace, str(path))
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == (["d1", "d2"] if existing else ["d2"])


def test_missing_strace_skips_here_and_fails_in_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="scripts/setup.sh"):
        find_strace()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run"):
        find_strace()
