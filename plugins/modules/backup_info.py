#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: backup_info
short_description: List the backup sets in a directory, with their ages and problems, read-only
version_added: 0.1.0
description:
  - Lists the backup sets written by M(botops.runbook.sqlite_backup) and
    M(botops.runbook.postgresql_backup) from their manifests - path, engine,
    database, time, age, size, verified or not.
  - Returns the latest backup and the latest verified one with their ages, so a play
    can fail on freshness with O(max_age) - instead of learning that backups stopped
    when they need one.
  - Files without a manifest, manifests whose files are gone, unreadable manifests and
    (with O(verify_checksums)) checksum mismatches are reported as problems, never ignored.
author:
  - botops.runbook developers (@botops)
attributes:
  check_mode:
    support: full
    description: The module is read-only; check mode does the same.
  diff_mode:
    support: none
    description: Nothing is changed.
options:
  path:
    description: Directory of backup sets (searched recursively unless O(recurse=false)).
    type: path
    required: true
  recurse:
    description: Look in subdirectories too (the C(<bot>/<engine>-<database>/) tree).
    type: bool
    default: true
  bot:
    description: Only the sets of this bot.
    type: str
  database:
    description: Only the sets of this database.
    type: str
  engine:
    description: Only the sets of this engine.
    type: str
    choices: [sqlite, postgresql]
  verify_checksums:
    description: Re-read every file and compare its sha256 with the manifest.
    type: bool
    default: false
  max_age:
    description:
      - Fail unless the latest verified backup is younger than this (seconds, or a
        number with C(s), C(m), C(h), C(d) or C(w), such as C(26h)).
    type: str
  fail_on_problems:
    description: Fail when a problem is found (a file without manifest, a missing file, a checksum mismatch).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Fail when the newest verified backup of the bot is older than 26 hours
  botops.runbook.backup_info:
    path: /var/backups/botops/reminder-bot
    max_age: 26h

- name: Re-read every backup and report damage
  botops.runbook.backup_info:
    path: /var/backups/botops
    verify_checksums: true
  register: catalog
"""

RETURN = r"""
backups:
  description:
    - The backup sets, newest first. C(duration) is the seconds from the start of the
      backup to the end of its verification (null when the manifest does not say).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/var/backups/botops/bot/sqlite-bot_data/bot_data_20261122T031500Z.db.zst", "name": "bot_data_20261122T031500Z.db.zst",
            "engine": "sqlite", "database": "bot_data", "bot": "bot", "created_at": "2026-11-22T03:15:00Z", "age": 3600,
            "series": {"bot": "bot", "engine": "sqlite", "database": "bot_data", "id": "bot/sqlite-bot_data",
                       "dir": "/var/backups/botops/bot/sqlite-bot_data"},
            "size": 4194304, "verified": true, "duration": 3, "complete": true, "checksums": "ok"}]
series:
  description:
    - Every backup series found - its key (C(bot), C(engine), C(database)), its C(id)
      (C(<bot>/<engine>-<database>), the path of its directory under a backup root),
      the directory C(dir) its newest set is in, and its C(count), C(size), C(latest)
      and C(latest_verified) set. Roles group and place sets by it instead of
      composing paths.
  returned: always
  type: list
  elements: dict
  sample: [{"bot": "bot", "engine": "sqlite", "database": "bot_data", "id": "bot/sqlite-bot_data",
            "dir": "/var/backups/botops/bot/sqlite-bot_data", "count": 14, "size": 58720256,
            "latest": {"path": "/var/backups/botops/bot/sqlite-bot_data/bot_data_20261122T031500Z.db.zst", "age": 3600},
            "latest_verified": {"path": "/var/backups/botops/bot/sqlite-bot_data/bot_data_20261122T031500Z.db.zst",
                                "age": 3600}}]
latest:
  description: The newest set (path, created_at, age), or null.
  returned: always
  type: dict
  sample: {"path": "/var/backups/botops/bot/sqlite-bot_data/bot_data_20261122T031500Z.db.zst", "age": 3600}
latest_verified:
  description: The newest verified, complete set, or null.
  returned: always
  type: dict
  sample: {"path": "/var/backups/botops/bot/sqlite-bot_data/bot_data_20261122T031500Z.db.zst", "age": 3600}
problems:
  description: Everything in the directory that is not a sound backup set.
  returned: always
  type: list
  elements: str
  sample: ["file '/var/backups/botops/bot/old.db' has no manifest: unfinished, or not made by this collection"]
unknown_files:
  description: Files that no manifest lists.
  returned: always
  type: list
  elements: str
  sample: ["/var/backups/botops/bot/old.db"]
unfinished:
  description:
    - Files of sets whose run was killed after publishing them and before their
      manifest, each with the complete C(pending_manifest) beside it.
      M(botops.runbook.backup_prune) removes them after its O(botops.runbook.backup_prune#module:temporary_grace).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/var/backups/botops/bot/sqlite-bot_data/bot_data_20261122T031500Z.db",
            "pending_manifest": "/var/backups/botops/bot/sqlite-bot_data/.bot_data_20261122T031500Z.db.manifest.json.k2j3.tmp"}]
temporary_files:
  description: Hidden temporary files of backups that were killed or are running now.
  returned: always
  type: list
  elements: str
  sample: ["/var/backups/botops/bot/.bot_data_20261122T031500Z.db.zst.k2j3.tmp"]
total_size:
  description: Bytes in all listed sets.
  returned: always
  type: int
  sample: 12582912
elapsed:
  description: Seconds the listing took.
  returned: always
  type: float
  sample: 0.02
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botops.runbook.plugins.module_utils._files import BackupError
from ansible_collections.botops.runbook.plugins.module_utils._catalog import as_result, by_series, scan
from ansible_collections.botops.runbook.plugins.module_utils._retention import parse_duration
from ansible_collections.botops.runbook.plugins.module_utils._run import run_main


def summary(backup):
    return {"path": backup["path"], "created_at": backup["created_at"], "age": backup["age"]} if backup else None


def newest_verified(sets):
    verified = [b for b in sets if b["verified"] and b["complete"]]
    return verified[0] if verified else None


def series_list(sets):
    """Each series of ``sets`` (newest first): its key, id, directory and newest sets."""
    listed = []
    for members in by_series(sets).values():
        listed.append(dict(members[0]["series"], count=len(members), size=sum(b["size"] for b in members),
                           latest=summary(members[0]), latest_verified=summary(newest_verified(members))))
    return sorted(listed, key=lambda entry: entry["id"])


def catalog(module, result):
    params = module.params
    max_age = parse_duration(params["max_age"])
    found = scan(params["path"], recurse=params["recurse"], verify_checksums=params["verify_checksums"])
    sets = [as_result(b) for b in found["sets"]
            if all(not params[key] or b["series"][key] == params[key] for key in ("bot", "database", "engine"))]
    verified = newest_verified(sets)
    result.update(backups=sets, series=series_list(sets), latest=summary(sets[0] if sets else None),
                  latest_verified=summary(verified), problems=found["problems"], unknown_files=found["unknown_files"],
                  unfinished=found["unfinished"], temporary_files=found["temporary_files"],
                  total_size=sum(b["size"] for b in sets))
    if max_age is not None:
        if not verified:
            raise BackupError("no verified backup in '%s'%s; backups have stopped or never ran"
                              % (params["path"], " for database '%s'" % params["database"] if params["database"] else ""))
        if verified["age"] > max_age:
            raise BackupError("the latest verified backup '%s' is %d s old, more than max_age %s; backups have "
                              "stopped" % (verified["path"], verified["age"], params["max_age"]))
    if params["fail_on_problems"] and result["problems"]:
        raise BackupError("%d problem(s) in '%s': %s" % (len(result["problems"]), params["path"],
                                                         "; ".join(result["problems"][:3])))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            recurse=dict(type="bool", default=True),
            bot=dict(type="str"),
            database=dict(type="str"),
            engine=dict(type="str", choices=["sqlite", "postgresql"]),
            verify_checksums=dict(type="bool", default=False),
            max_age=dict(type="str"),
            fail_on_problems=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    run_main(module, lambda result: catalog(module, result), {"changed": False},
             "listing the backups in '%s'" % module.params["path"], subject=module.params["path"])


if __name__ == "__main__":
    main()
