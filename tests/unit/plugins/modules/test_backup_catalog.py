# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_info and backup_prune on real backup sets in tmp_path."""

import datetime
import hashlib
import json
import os
import time

import pytest

from ansible_collections.botops.runbook.plugins.module_utils._manifest import (
    backup_name,
    manifest_path,
    new_manifest,
    write_manifest,
)
from ansible_collections.botops.runbook.plugins.modules import backup_info, backup_prune, sqlite_backup

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def make_set(directory, database, hours_ago, engine="sqlite", verified=True, host="bot1", bot=None):
    """A backup set as the *_backup modules write it, created ``hours_ago``."""
    created = NOW - datetime.timedelta(hours=hours_ago)
    path = os.path.join(str(directory), backup_name(database, created, ".db", "none"))
    data = ("%s %s" % (database, created)).encode()
    with open(path, "wb") as handle:
        handle.write(data)
    manifest = new_manifest(engine, database, created, bot=bot)
    manifest.update(host=host, files=[{"name": os.path.basename(path), "size": len(data),
                                       "sha256": hashlib.sha256(data).hexdigest()}],
                    verified={"method": "integrity_check", "ok": verified, "at": "x"})
    write_manifest(manifest_path(path), manifest)
    return path


def names(directory):
    return sorted(os.listdir(directory))


def test_info_lists_sets_and_reports_every_problem(run_module, tmp_path):
    newest = make_set(tmp_path, "bot_data", 1)
    make_set(tmp_path, "bot_data", 25)
    orphan = make_set(tmp_path, "bot_data", 49)
    os.unlink(orphan)
    (tmp_path / "bot_data_old_copy.db").write_bytes(b"cp bot_data.db backup/")
    (tmp_path / "broken.db.manifest.json").write_text("{not json")
    damaged = make_set(tmp_path, "games", 2)
    with open(damaged, "ab") as handle:
        handle.write(b"x")

    result = run_module(backup_info, {"path": str(tmp_path), "verify_checksums": True}, check_mode=True)
    assert not result["failed"], result.get("msg")
    assert result["changed"] is False
    assert [b["path"] for b in result["backups"]][0] == newest
    assert result["latest"]["path"] == newest and 3500 <= result["latest"]["age"] <= 3700
    problems = "\n".join(result["problems"])
    assert "bot_data_old_copy.db' has no manifest" in problems
    assert "broken.db.manifest.json' cannot be used" in problems
    assert "which is gone" in problems
    assert "does not match its manifest's sha256" in problems
    games = [b for b in result["backups"] if b["database"] == "games"][0]
    assert games["verified"] is False and games["checksums"] == "mismatch"


def test_info_freshness(run_module, tmp_path):
    make_set(tmp_path, "bot_data", 30)
    make_set(tmp_path, "bot_data", 2, verified=False)
    fresh = run_module(backup_info, {"path": str(tmp_path), "max_age": "36h"})
    assert not fresh["failed"] and fresh["latest"]["age"] < fresh["latest_verified"]["age"]
    stale = run_module(backup_info, {"path": str(tmp_path), "max_age": "26h"})
    assert stale["failed"] and "more than max_age 26h" in stale["msg"] and "backups have stopped" in stale["msg"]
    nothing = run_module(backup_info, {"path": str(tmp_path), "max_age": "1d", "database": "games"})
    assert nothing["failed"] and "no verified backup" in nothing["msg"]


def test_info_reads_real_backups(run_module, bot_db, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    made = run_module(sqlite_backup, {"path": bot_db[0], "dest_dir": str(out)})
    result = run_module(backup_info, {"path": str(out), "verify_checksums": True})
    assert result["problems"] == []
    assert result["latest_verified"]["path"] == made["dest"] and result["backups"][0]["checksums"] == "ok"


def test_prune_keeps_per_database_and_is_exact_in_check_mode(run_module, tmp_path):
    for hours in (1, 2, 3, 4, 5):
        make_set(tmp_path, "bot_data", hours)
    for hours in (10, 20, 30):
        make_set(tmp_path, "games", hours)
    before = names(tmp_path)
    args = {"path": str(tmp_path), "keep_last": 2}

    checked = run_module(backup_prune, args, check_mode=True, diff=True)
    assert checked["changed"] is True
    assert names(tmp_path) == before
    assert len(checked["deleted"]) == 4 and len(checked["kept"]) == 4
    assert all(k["reasons"] for k in checked["kept"])
    assert checked["diff"]["before"].count("\n") == 8 and checked["diff"]["after"].count("\n") == 4

    real = run_module(backup_prune, args)
    assert real["deleted"] == checked["deleted"]
    assert len(names(tmp_path)) == 8  # 4 sets, each data + manifest
    gone = sorted(str(tmp_path / n) for n in set(before) - set(names(tmp_path)))
    assert sorted(real["deleted_files"]) == gone
    again = run_module(backup_prune, args)
    assert again["changed"] is False and again["deleted"] == []


def test_prune_never_deletes_the_newest_verified_backup(run_module, tmp_path):
    old_good = make_set(tmp_path, "bot_data", 24 * 40)
    make_set(tmp_path, "bot_data", 2, verified=False)
    make_set(tmp_path, "bot_data", 1, verified=False)
    result = run_module(backup_prune, {"path": str(tmp_path), "max_age": "30d"})
    assert os.path.exists(old_good)
    kept = {k["path"]: k["reasons"] for k in result["kept"]}
    assert kept[old_good] == ["newest verified backup (never deleted)"]


def test_prune_leaves_unknown_files_unless_asked(run_module, tmp_path):
    make_set(tmp_path, "bot_data", 1)
    stray = tmp_path / "copied_by_hand.db"
    stray.write_bytes(b"x")
    run_module(backup_prune, {"path": str(tmp_path), "keep_last": 1})
    assert stray.exists()
    result = run_module(backup_prune, {"path": str(tmp_path), "keep_last": 1, "prune_unknown": True})
    assert not stray.exists() and str(stray) in result["deleted_files"]


def test_prune_removes_old_temporary_files_only(run_module, tmp_path):
    make_set(tmp_path, "bot_data", 1)
    old = tmp_path / ".bot_data_x.db.abc.tmp"
    young = tmp_path / ".bot_data_y.db.def.tmp"
    old.write_bytes(b"killed")
    young.write_bytes(b"running now")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    run_module(backup_prune, {"path": str(tmp_path), "keep_last": 1})
    assert not old.exists() and young.exists()


@pytest.mark.parametrize("policy", [{}, {"keep_last": 0}])
def test_prune_refuses_a_policy_that_keeps_nothing(run_module, tmp_path, policy):
    make_set(tmp_path, "bot_data", 1)
    before = names(tmp_path)
    result = run_module(backup_prune, dict(policy, path=str(tmp_path)))
    assert result["failed"] and "keeps nothing" in result["msg"]
    assert names(tmp_path) == before


def test_prune_with_a_corrupted_manifest_in_the_directory(run_module, tmp_path):
    make_set(tmp_path, "bot_data", 1)
    make_set(tmp_path, "bot_data", 2)
    bad = make_set(tmp_path, "bot_data", 3)
    with open(manifest_path(bad), "w") as handle:
        handle.write(json.dumps({"format_version": 1}))
    result = run_module(backup_prune, {"path": str(tmp_path), "keep_last": 1})
    assert not result["failed"]
    assert os.path.exists(bad), "a file whose manifest is unreadable is unknown, and unknown files stay"
    assert any("cannot be used" in p for p in result["problems"])


def test_two_bots_with_one_database_name_are_two_series(run_module, tmp_path):
    """One tree, two bots whose databases share a name: backup_info lists two series
    and backup_prune keeps keep_last sets of each (a (engine, database) key would
    prune one bot's sets for the other's)."""
    for bot in ("reminder-bot", "clip-bot"):
        series_dir = tmp_path / bot / "sqlite-bot_data"
        series_dir.mkdir(parents=True)
        for hours in (1, 2, 3):
            make_set(series_dir, "bot_data", hours + (0.5 if bot == "clip-bot" else 0), bot=bot)
    info = run_module(backup_info, {"path": str(tmp_path)})
    listed = [(s["id"], s["count"]) for s in info["series"]]
    assert listed == [("clip-bot/sqlite-bot_data", 3), ("reminder-bot/sqlite-bot_data", 3)]
    assert {s["dir"] for s in info["series"]} == {str(tmp_path / b / "sqlite-bot_data")
                                                  for b in ("reminder-bot", "clip-bot")}
    assert all(b["series"]["id"] == "%s/sqlite-bot_data" % b["bot"] for b in info["backups"])
    only = run_module(backup_info, {"path": str(tmp_path), "bot": "clip-bot"})
    assert {b["bot"] for b in only["backups"]} == {"clip-bot"}

    pruned = run_module(backup_prune, {"path": str(tmp_path), "keep_last": 2})
    assert len(pruned["deleted"]) == 2 and len(pruned["kept"]) == 4
    for bot in ("reminder-bot", "clip-bot"):
        assert len([n for n in names(tmp_path / bot / "sqlite-bot_data") if n.endswith(".json")]) == 2


def test_backup_root_and_bot_place_the_set_in_its_series_directory(run_module, bot_db, tmp_path):
    root = tmp_path / "backups"
    checked = run_module(sqlite_backup, {"path": bot_db[0], "backup_root": str(root), "bot": "reminder-bot"},
                         check_mode=True)
    series_dir = str(root / "reminder-bot" / "sqlite-bot_data")
    assert checked["changed"] and checked["series"]["dir"] == series_dir and not root.exists()
    made = run_module(sqlite_backup, {"path": bot_db[0], "backup_root": str(root), "bot": "reminder-bot"})
    assert not made["failed"], made.get("msg")
    assert os.path.dirname(made["dest"]) == series_dir
    assert made["series"] == {"bot": "reminder-bot", "engine": "sqlite", "database": "bot_data",
                              "id": "reminder-bot/sqlite-bot_data", "dir": series_dir}
    assert oct(os.stat(series_dir).st_mode & 0o777) == "0o700"
    info = run_module(backup_info, {"path": str(root)})
    assert info["series"][0]["id"] == made["series"]["id"] and info["series"][0]["dir"] == series_dir
    assert info["series"][0]["latest_verified"]["path"] == made["dest"]


@pytest.mark.parametrize("bot", ["", ".", "..", ".hidden", "a/b", "a\nb", "a\x00b"])
def test_a_bot_name_that_cannot_be_a_directory_is_refused(run_module, bot_db, tmp_path, bot):
    root = tmp_path / "backups"
    result = run_module(sqlite_backup, {"path": bot_db[0], "backup_root": str(root), "bot": bot})
    assert result["failed"]
    if bot:  # an empty name is refused by the argument spec (required_by)
        assert "cannot name a backup series directory" in result["msg"] and "dest_dir" in result["msg"]
    assert not root.exists()


def test_backup_root_needs_a_bot(run_module, bot_db, tmp_path):
    root = tmp_path / "backups"
    result = run_module(sqlite_backup, {"path": bot_db[0], "backup_root": str(root)})
    assert result["failed"] and result["msg"] == "missing parameter(s) required by 'backup_root': bot"
    assert not root.exists()


def test_sets_without_a_bot_belong_to_their_host(run_module, tmp_path):
    """Two hosts' sets written without a bot name, in one directory: two series,
    each keeps its own newest (the host stands in for the bot)."""
    newest = []
    for host in ("hostA", "hostB"):
        newest.append(make_set(tmp_path, "bot_data", 1 + (0.5 if host == "hostB" else 0), host=host))
        make_set(tmp_path, "bot_data", 2 + (0.5 if host == "hostB" else 0), host=host)
    info = run_module(backup_info, {"path": str(tmp_path)})
    assert sorted(s["id"] for s in info["series"]) == ["hostA/sqlite-bot_data", "hostB/sqlite-bot_data"]
    pruned = run_module(backup_prune, {"path": str(tmp_path), "keep_last": 1})
    assert sorted(k["path"] for k in pruned["kept"]) == sorted(newest)
    assert len(pruned["deleted"]) == 2


@pytest.mark.parametrize("bot", ["..", "../../etc", "a/b", ".hidden", 7])
def test_a_manifest_whose_series_cannot_be_a_directory_is_a_problem(run_module, tmp_path, bot):
    good = make_set(tmp_path, "bot_data", 1, bot="reminder-bot")
    bad = make_set(tmp_path, "bot_data", 2, bot=bot)
    info = run_module(backup_info, {"path": str(tmp_path)})
    assert [b["path"] for b in info["backups"]] == [good]
    assert any("cannot name a backup series directory" in p and bad in p for p in info["problems"])
    pruned = run_module(backup_prune, {"path": str(tmp_path), "keep_last": 1})
    assert os.path.exists(bad) and not pruned["failed"]


@pytest.mark.parametrize("name", ["../outside/victim.txt", "/ABS/victim.txt", "sub/../../victim.txt", "."])
def test_prune_deletes_nothing_a_manifest_names_outside_its_set(run_module, tmp_path, name):
    """A manifest that names a file outside its own set is a described problem and
    prune deletes nothing for it (issue: a compromised bot's manifest deleted files
    on the backup host)."""
    tree = tmp_path / "tree"
    tree.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("keep me")
    make_set(tree, "bot_data", 1)
    forged = make_set(tree, "bot_data", 48)
    manifest = json.loads(open(manifest_path(forged)).read())
    manifest["files"].append({"name": name.replace("/ABS", str(tmp_path) + "/outside"), "size": 7,
                              "sha256": hashlib.sha256(b"keep me").hexdigest()})
    with open(manifest_path(forged), "w") as handle:
        json.dump(manifest, handle)
    pruned = run_module(backup_prune, {"path": str(tree), "keep_last": 1})
    assert not pruned["failed"], pruned.get("msg")
    assert victim.read_text() == "keep me"
    assert any("cannot be trusted" in p and manifest_path(forged) in p for p in pruned["problems"])
    assert all(p.startswith(str(tree)) for p in pruned["deleted_files"])


def test_prune_never_deletes_a_file_of_a_kept_set(run_module, tmp_path):
    """A stale manifest that names the newest set's file under a companion-like
    name, or a symlink to it, never takes that file with it."""
    newest = make_set(tmp_path, "bot_data", 1)
    old = make_set(tmp_path, "bot_data", 48)
    link = old[:-len(".db")] + ".globals.sql"
    os.symlink(newest, link)
    manifest = json.loads(open(manifest_path(old)).read())
    manifest["files"].append({"name": os.path.basename(link), "size": os.path.getsize(newest),
                              "sha256": hashlib.sha256(open(newest, "rb").read()).hexdigest()})
    with open(manifest_path(old), "w") as handle:
        json.dump(manifest, handle)
    pruned = run_module(backup_prune, {"path": str(tmp_path), "keep_last": 1})
    assert not pruned["failed"], pruned.get("msg")
    assert [d["path"] for d in pruned["deleted"]] == [old]
    assert os.path.exists(newest) and link not in pruned["deleted_files"]
    assert not os.path.exists(old)


def test_an_automatic_name_is_never_one_a_killed_run_left_temporary_files_for(tmp_path, monkeypatch):
    """A run killed after writing its pending manifest left `.<name>.manifest.json.*.tmp`
    but nothing under <name>; a second run in the same second must take another
    name, or its data would be paired with the first run's manifest (found by the
    crash-point enumeration of postgresql_backup)."""
    from ansible_collections.botops.runbook.plugins.module_utils import _manifest  # pylint: disable=import-outside-toplevel
    clock = [datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)]

    def frozen():
        return clock[0]

    def tick(seconds):
        clock[0] += datetime.timedelta(seconds=1)

    monkeypatch.setattr(_manifest, "utc_now", frozen)
    monkeypatch.setattr(_manifest.time, "sleep", tick)
    first, created = _manifest.auto_destination(str(tmp_path), "botdb", ".dump", "zstd")
    (tmp_path / (".%s.manifest.json.x1y2.tmp" % os.path.basename(first))).write_text("{}")
    second, later = _manifest.auto_destination(str(tmp_path), "botdb", ".dump", "zstd")
    assert second != first and later > created
    (tmp_path / (".%s.abc.tmp" % os.path.basename(second))).write_text("")  # a data temp file counts too
    third, dummy = _manifest.auto_destination(str(tmp_path), "botdb", ".dump", "zstd")
    assert third not in (first, second)
