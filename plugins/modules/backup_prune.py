#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: backup_prune
short_description: Apply grandfather-father-son retention to backup sets, safely
version_added: 0.1.0
description:
  - Deletes the backup sets that no retention rule keeps - C(keep_last),
    C(keep_hourly), C(keep_daily), C(keep_weekly), C(keep_monthly), C(keep_yearly) (as
    restic and borgmatic define them) and C(max_age).
  - Sets are grouped by their series - (bot, engine, database) from their
    manifests, the host standing in for a bot a set was written without - so two
    bots, two hosts or two databases in one tree never prune each other.
  - Never deletes the newest verified backup of a group. Never deletes a file without a
    manifest unless O(prune_unknown=true). Deletes a backup and its manifest together.
  - Refuses a policy that would keep nothing. Replaces the usual
    C(find -mtime +30 -delete), which happily deletes the only good backup.
author:
  - botops.runbook developers (@botops)
attributes:
  check_mode:
    support: full
    description: Lists exactly what would be deleted and what is kept, with the rule that keeps each; deletes nothing.
  diff_mode:
    support: full
    description: The sets before and after.
options:
  path:
    description: Directory of backup sets (searched recursively unless O(recurse=false)).
    type: path
    required: true
  recurse:
    description: Look in subdirectories too.
    type: bool
    default: true
  bot:
    description: Only prune the sets of this bot (for sets written without one, the host's name).
    type: str
  database:
    description: Only prune the sets of this database.
    type: str
  keep_last:
    description: Keep the N newest sets.
    type: int
    default: 0
  keep_hourly:
    description: Keep the newest set of each of the N most recent hours that have one.
    type: int
    default: 0
  keep_daily:
    description: Keep the newest set of each of the N most recent days that have one.
    type: int
    default: 0
  keep_weekly:
    description: Keep the newest set of each of the N most recent ISO weeks that have one.
    type: int
    default: 0
  keep_monthly:
    description: Keep the newest set of each of the N most recent months that have one.
    type: int
    default: 0
  keep_yearly:
    description: Keep the newest set of each of the N most recent years that have one.
    type: int
    default: 0
  max_age:
    description:
      - Delete sets older than this, whatever else keeps them (seconds, or a number with
        C(s), C(m), C(h), C(d) or C(w), such as C(30d)). Alone, it keeps everything younger.
    type: str
  timezone:
    description: Time zone of the hour, day, week, month and year buckets (an IANA name).
    type: str
    default: UTC
  prune_unknown:
    description: Also delete files that no manifest lists (never by default).
    type: bool
    default: false
  temporary_grace:
    description:
      - Leftover hidden temporary files of killed backups older than this are deleted (a
        younger one may belong to a backup running now).
    type: str
    default: 1d
  lock_timeout:
    description:
      - Seconds to wait when a backup is committing a set (or another prune is deleting)
        in one of the directories, before failing with a clear error.
      - Every directory under O(path) is flock()ed (the lock a backup holds while it
        names and commits its set there) before the sets are read, until the deletions
        are done, so a prune never takes a set being committed for an unfinished one
        or for files no manifest lists. Not in check mode.
    type: int
    default: 300
notes:
  - A set whose manifest lists a missing file is reported and left alone, unless every file it lists is gone (what a
    prune cut short leaves), then its manifest goes too when the policy, counting it among its series' sets (never as
    the newest verified one), would not keep it.
  - Deletions are durable, in their order, through a power cut too - a set's files are
    removed and their directory fsynced before its manifest is, and every directory is
    fsynced before the module returns. A cut in the middle leaves, at worst, a manifest
    whose files are gone (reported in RV(problems)), never a set's file without its
    manifest.
"""

EXAMPLES = r"""
- name: Daily backups kept 30 days, plus one a month for a year
  botops.runbook.backup_prune:
    path: /var/backups/botops/reminder-bot
    keep_daily: 30
    keep_monthly: 12

- name: Preview what "keep last 10" would delete
  botops.runbook.backup_prune:
    path: /var/backups/botops/games
    keep_last: 10
  check_mode: true
  diff: true
"""

RETURN = r"""
deleted:
  description: The sets deleted (in check mode, that would be deleted).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/var/backups/botops/bot/sqlite-bot_data/bot_data_20261001T031500Z.db.zst", "created_at": "2026-10-01T03:15:00Z"}]
kept:
  description: The sets kept, each with the rules that keep it.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/var/backups/botops/bot/sqlite-bot_data/bot_data_20261122T031500Z.db.zst", "reasons": ["keep_daily (2026-11-22)"]}]
deleted_files:
  description: Every file removed (or that would be), manifests and unknown files included.
  returned: always
  type: list
  elements: str
  sample: ["/var/backups/botops/bot/sqlite-bot_data/bot_data_20261001T031500Z.db.zst"]
problems:
  description: What is not a sound backup set, as in M(botops.runbook.backup_info).
  returned: always
  type: list
  elements: str
  sample: []
freed:
  description: Bytes freed (or that would be).
  returned: always
  type: int
  sample: 41943040
elapsed:
  description: Seconds the run took.
  returned: always
  type: float
  sample: 0.05
"""

import datetime
import os
import shutil
from contextlib import ExitStack

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botops.runbook.plugins.module_utils._files import BackupError, fsync_dir
from ansible_collections.botops.runbook.plugins.module_utils._catalog import by_series, is_temporary, scan
from ansible_collections.botops.runbook.plugins.module_utils._lock import FileLock
from ansible_collections.botops.runbook.plugins.module_utils._retention import (
    RetentionError,
    parse_duration,
    select,
)
from ansible_collections.botops.runbook.plugins.module_utils._run import run_main

try:
    from zoneinfo import ZoneInfo
except ImportError:  # Python < 3.9 on the managed host: UTC only
    ZoneInfo = None


def time_zone(name):
    if name in ("UTC", "utc"):
        return datetime.timezone.utc
    if ZoneInfo is None:
        raise RetentionError("timezone=%s needs Python 3.9 or newer on the managed host; use UTC" % name)
    try:
        return ZoneInfo(name)
    except Exception:  # pylint: disable=broad-except  # ZoneInfoNotFoundError, ValueError
        raise RetentionError("unknown timezone %r; use an IANA name such as Europe/Berlin" % name)


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def make_durable(directories):
    """fsync each directory a removal changed (and forget them): until then a power
    cut may bring the removed names back, in any order."""
    for directory in sorted(directories):
        try:
            fsync_dir(directory)
        except OSError as exc:
            raise BackupError("cannot make the deletions in '%s' durable (fsync of the directory): %s"
                              % (directory, exc.strerror))
    directories.clear()


def remove_in_order(doomed, manifests):
    """Remove ``doomed`` in its order. Before a manifest (or pending manifest) in
    ``manifests`` goes, what was removed before it is made durable: the data of a
    set is gone for good before its manifest is, so that a power cut, like a kill,
    leaves at worst a visible orphan manifest."""
    dirty = set()
    for path in doomed:
        if path in manifests:
            make_durable(dirty)
        try:
            remove(path)
        except OSError as exc:
            make_durable(dirty)
            raise BackupError("cannot delete '%s': %s; nothing after it was deleted" % (path, exc.strerror))
        dirty.add(os.path.dirname(os.path.abspath(path)))
    make_durable(dirty)


def directories(root, recurse):
    """The directories a prune reads and deletes in, sorted (every prune takes their
    locks in one order): ``root`` and, with ``recurse``, those below it, as the
    catalog walks them - never a temporary directory, never through a symlink."""
    found = {os.path.realpath(root)}
    if recurse:
        for dirpath, dirnames, dummy in os.walk(root):
            dirnames[:] = [d for d in dirnames if not is_temporary(d) and not os.path.islink(os.path.join(dirpath, d))]
            found.update(os.path.realpath(os.path.join(dirpath, d)) for d in dirnames)
    return sorted(found)


def lock_directories(locks, module, found):
    """Hold the set-name lock of every directory of ``found`` (in ``locks``, an
    ExitStack); returns the directories held (one removed meanwhile is skipped)."""
    held = set()
    for directory in found:
        lock = FileLock(directory, "the sets in '%s'" % directory, module.params["lock_timeout"], path=directory,
                        activity="backup or prune of")
        try:
            locks.enter_context(lock)
        except FileNotFoundError:
            continue
        held.add(directory)
    return held


def only_in(held, catalog):
    """The catalog without what lies in a directory made after the locks were taken:
    a set may be committing there, so it is left for the next prune."""
    def inside(path):
        return os.path.realpath(os.path.dirname(os.path.abspath(path))) in held
    return dict(catalog, sets=[b for b in catalog["sets"] if inside(b["manifest"])],
                unknown_files=[p for p in catalog["unknown_files"] if inside(p)],
                unfinished=[u for u in catalog["unfinished"] if inside(u["path"])],
                temporary_files=[p for p in catalog["temporary_files"] if inside(p)])


def stamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def husk(backup):
    """A manifest whose every file is gone: what a prune cut short between a set's
    data and its manifest leaves."""
    return not backup["complete"] and not any(os.path.lexists(p) for p in backup["files"])


def plan(params, catalog, now, policy, tz):
    """(kept, deleted): retention applied to each series on its own. A husk goes
    (its manifest alone) when the policy, counting it among its series' sets,
    would not keep it; one it would keep stays, reported, as any set with a
    missing file does."""
    wanted = [b for b in catalog["sets"]
              if all(not params[key] or b["series"][key] == params[key] for key in ("bot", "database"))]
    chosen = [b for b in wanted if b["complete"]]
    kept, deleted = [], []
    series = by_series(chosen)
    for members in series.values():
        keep = select([dict(b, id=b["path"]) for b in members], now, policy, tz=tz)
        for backup in members:
            if backup["path"] in keep:
                kept.append({"path": backup["path"], "created_at": stamp(backup["created_at"]),
                             "reasons": keep[backup["path"]]})
            else:
                deleted.append(backup)
    for backup in (b for b in wanted if husk(b)):
        members = series.get(backup["series"]["id"], []) + [backup]
        if backup["path"] not in select([dict(b, id=b["path"], verified=b is not backup and b["verified"])
                                         for b in members], now, policy, tz=tz):
            deleted.append(backup)
    return kept, deleted


def prune(module, spec, result):
    """Read the sets and delete what the policy does not keep, holding the lock of
    every directory (not in check mode): a backup commits a set in its directory
    holding that lock, so no set is read half-committed."""
    with ExitStack() as locks:
        held = None
        if not module.check_mode:
            held = lock_directories(locks, module, directories(module.params["path"], module.params["recurse"]))
        prune_held(module, spec, result, held)


def prune_held(module, spec, result, held):
    params = module.params
    now = datetime.datetime.now(datetime.timezone.utc)
    policy = {k: params[k] for k in spec if k.startswith("keep_")}
    policy["max_age"] = parse_duration(params["max_age"])
    grace = parse_duration(params["temporary_grace"])
    tz = time_zone(params["timezone"])
    catalog = scan(params["path"], recurse=params["recurse"], now=now)
    if held is not None:
        catalog = only_in(held, catalog)
    kept, deleted = plan(params, catalog, now, policy, tz)

    # Never a file a kept (or incomplete, unchosen) set also names, never through a symlink.
    spared = set()
    for backup in catalog["sets"]:
        if backup not in deleted:
            spared.update(backup["files"] + [backup["path"], backup["manifest"]])
    doomed = []
    for backup in deleted:
        # data first: a half-done delete leaves a visible orphan manifest
        doomed += [p for p in backup["files"] + [backup["manifest"]] if p not in spared and not os.path.islink(p)]
    if params["prune_unknown"]:
        doomed += catalog["unknown_files"]
    stale = [p for p in catalog["temporary_files"] if grace is not None and
             (now.timestamp() - os.path.getmtime(p)) > grace]
    # an unfinished set (its run killed before the manifest) goes with its pending manifest
    unfinished = [u for u in catalog["unfinished"] if u["pending_manifest"] in stale]
    doomed += [u["path"] for u in unfinished] + stale
    manifests = {b["manifest"] for b in deleted} | {u["pending_manifest"] for u in unfinished}
    result.update(changed=bool(doomed), deleted=[{"path": b["path"], "created_at": stamp(b["created_at"])}
                                                 for b in deleted],
                  kept=kept, deleted_files=doomed, problems=catalog["problems"],
                  freed=sum(b["size"] for b in deleted))
    if module._diff:
        before = sorted(b["path"] for b in deleted) + sorted(k["path"] for k in kept)
        result["diff"] = {"before": "\n".join(sorted(before)) + "\n",
                          "after": "\n".join(sorted(k["path"] for k in kept)) + "\n"}
    if not module.check_mode:
        remove_in_order(doomed, manifests)


def main():
    spec = dict(
        path=dict(type="path", required=True),
        recurse=dict(type="bool", default=True),
        bot=dict(type="str"),
        database=dict(type="str"),
        max_age=dict(type="str"),
        timezone=dict(type="str", default="UTC"),
        prune_unknown=dict(type="bool", default=False),
        temporary_grace=dict(type="str", default="1d"),
        lock_timeout=dict(type="int", default=300),
    )
    for name in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
        spec["keep_" + name] = dict(type="int", default=0)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    run_main(module, lambda result: prune(module, spec, result), {"changed": False},
             "pruning the backups in '%s'" % module.params["path"], subject=module.params["path"])


if __name__ == "__main__":
    main()
