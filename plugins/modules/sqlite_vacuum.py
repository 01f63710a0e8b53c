#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: sqlite_vacuum
short_description: VACUUM, ANALYZE, REINDEX, optimize, checkpoint and journal mode of a SQLite database
version_added: 0.1.0
description:
  - Runs the maintenance bot operators do by hand (C(VACUUM), C(ANALYZE), C(REINDEX),
    C(PRAGMA optimize), C(PRAGMA wal_checkpoint(TRUNCATE))) and sets the journal mode
    (WAL is what a bot with a backup schedule wants).
  - Reports size, page count and free pages before and after, and C(changed) only
    when something changed.
  - Refuses C(VACUUM) when the free disk space is below what it needs (about twice
    the database), and reports a locked database as such, not as a traceback.
author:
  - botops.runbook developers (@botops)
attributes:
  check_mode:
    support: full
    description:
      - C(analyze), C(reindex) and C(optimize) run inside a transaction that is rolled
        back, so the prediction is exact; C(vacuum) is predicted from the free pages,
        C(wal_checkpoint) from the C(-wal) size, the journal mode by comparison.
  diff_mode:
    support: full
    description: Shows size, page_count, freelist_count, journal mode and C(-wal) size before and after.
options:
  path:
    description: Path of the SQLite database.
    type: path
    required: true
  operations:
    description:
      - Operations to run, in this order whatever order they are listed in -
        C(wal_checkpoint), C(analyze), C(reindex), C(optimize), C(vacuum).
    type: list
    elements: str
    choices: [vacuum, analyze, reindex, optimize, wal_checkpoint]
    default: []
  journal_mode:
    description:
      - Persistent journal mode to set. C(wal) lets readers, and backups, run while
        the bot writes.
      - C(synchronous=NORMAL) is the usual companion of WAL. That setting is
        per connection and is not stored in the file, so the bot sets it when it
        connects; this module cannot set it for the bot.
    type: str
    choices: [wal, delete, truncate, persist]
  busy_timeout:
    description: Milliseconds to wait for a lock held by another connection.
    type: int
    default: 10000
notes:
  - C(VACUUM) rewrites the whole database and holds an exclusive lock while it runs;
    schedule it when the bot is quiet, or stop the bot first.
seealso:
  - module: botops.runbook.sqlite_check
  - module: botops.runbook.sqlite_backup
"""

EXAMPLES = r"""
- name: Weekly maintenance (VACUUM + ANALYZE)
  botops.runbook.sqlite_vacuum:
    path: /srv/games/shared/data/games.db
    operations: [analyze, vacuum]

- name: Switch to WAL so backups never block the bot
  botops.runbook.sqlite_vacuum:
    path: /srv/discord/discord_bot.db
    journal_mode: wal
"""

RETURN = r"""
before:
  description: Size, page_count, freelist_count, journal_mode and wal_size before.
  returned: always
  type: dict
  sample: {"size": 8388608, "page_count": 2048, "freelist_count": 300, "journal_mode": "delete", "wal_size": 0}
after:
  description: The same facts after (in check mode, the prediction for journal mode only).
  returned: always
  type: dict
  sample: {"size": 7159808, "page_count": 1748, "freelist_count": 0, "journal_mode": "wal", "wal_size": 0}
operations:
  description: What each requested operation did.
  returned: always
  type: dict
  sample: {"analyze": "changed", "vacuum": "changed"}
elapsed:
  description: Seconds the operations took.
  returned: always
  type: float
  sample: 0.8
"""

import hashlib
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botops.runbook.plugins.module_utils._run import run_main
from ansible_collections.botops.runbook.plugins.module_utils._sqlite import (
    SqliteError,
    connect,
    explain,
    pragma,
)

ORDER = ["wal_checkpoint", "analyze", "reindex", "optimize", "vacuum"]
IN_TRANSACTION = {"analyze": "ANALYZE", "reindex": "REINDEX", "optimize": "PRAGMA optimize"}


def wal_size(path):
    wal = path + "-wal"
    return os.path.getsize(wal) if os.path.exists(wal) else 0


def file_facts(conn, path):
    """Size, pages, free pages, journal mode and WAL size of the database now."""
    return {
        "size": os.path.getsize(path),
        "page_count": pragma(conn, "page_count"),
        "freelist_count": pragma(conn, "freelist_count"),
        "journal_mode": pragma(conn, "journal_mode"),
        "wal_size": wal_size(path),
    }


def statistics_fingerprint(conn):
    """What ANALYZE, REINDEX and optimize change: the stat tables and the page counts."""
    digest = hashlib.sha256()
    for table in ("sqlite_stat1", "sqlite_stat4"):
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone():
            for row in conn.execute("SELECT * FROM %s ORDER BY 1, 2" % table):
                digest.update(repr(row).encode("utf-8"))
    digest.update(repr((pragma(conn, "page_count"), pragma(conn, "freelist_count"))).encode("utf-8"))
    return digest.hexdigest()


def run_in_transaction(conn, statements, commit):
    """Run ``statements`` in one transaction; roll back in check mode. Returns changed."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = statistics_fingerprint(conn)
        for statement in statements:
            conn.execute(statement)
        changed = statistics_fingerprint(conn) != before
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT" if commit else "ROLLBACK")
    return changed


def check_vacuum_space(path):
    needed = 2 * (os.path.getsize(path) + wal_size(path))
    stat = os.statvfs(os.path.dirname(os.path.abspath(path)))
    free = stat.f_bavail * stat.f_frsize
    if free < needed:
        raise SqliteError("refusing to VACUUM '%s': it needs about %d bytes free (twice the database) and the "
                          "filesystem has %d; free space first" % (path, needed, free))


def maintain(module, result):
    params = module.params
    path = params["path"]
    wanted = [op for op in ORDER if op in params["operations"]]
    check_mode = module.check_mode
    outcome = result["operations"]
    conn = connect(path, readonly=False, busy_timeout=params["busy_timeout"])
    try:
        before = file_facts(conn, path)
        if "vacuum" in wanted:
            check_vacuum_space(path)
        if params["journal_mode"] and params["journal_mode"] != before["journal_mode"]:
            if not check_mode:
                mode = conn.execute("PRAGMA journal_mode = %s" % params["journal_mode"]).fetchone()[0]
                if mode != params["journal_mode"]:
                    raise SqliteError("cannot set journal mode of '%s' to %s: SQLite kept '%s' (another connection "
                                      "may be using the database)" % (path, params["journal_mode"], mode))
            outcome["journal_mode"] = "changed"
        elif params["journal_mode"]:
            outcome["journal_mode"] = "unchanged"

        for op in wanted:
            if op == "wal_checkpoint":
                if before["journal_mode"] != "wal" and outcome.get("journal_mode") != "changed":
                    outcome[op] = "unchanged"  # no WAL, nothing to fold in
                    continue
                if not check_mode:
                    busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                    if busy:
                        raise SqliteError("checkpoint of '%s' could not finish: a reader or writer kept the WAL busy; "
                                          "retry later or raise busy_timeout" % path)
                outcome[op] = "changed" if wal_size(path) or before["wal_size"] else "unchanged"
            elif op in IN_TRANSACTION:
                changed = run_in_transaction(conn, [IN_TRANSACTION[op]], commit=not check_mode)
                outcome[op] = "changed" if changed else "unchanged"
            elif op == "vacuum":
                if check_mode:
                    outcome[op] = "changed" if before["freelist_count"] else "unchanged"
                else:
                    conn.execute("VACUUM")
                    now = file_facts(conn, path)
                    same = all(now[k] == before[k] for k in ("page_count", "freelist_count", "size"))
                    outcome[op] = "unchanged" if same else "changed"

        after = before.copy() if check_mode else file_facts(conn, path)
        if check_mode and params["journal_mode"]:
            after["journal_mode"] = params["journal_mode"]
    finally:
        conn.close()
    result.update(changed="changed" in outcome.values(), before=before, after=after)
    if module._diff:
        result["diff"] = {"before": before, "after": after}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            operations=dict(type="list", elements="str", default=[], choices=ORDER),
            journal_mode=dict(type="str", choices=["wal", "delete", "truncate", "persist"]),
            busy_timeout=dict(type="int", default=10000),
        ),
        supports_check_mode=True,
    )
    action = "maintenance of '%s'" % module.params["path"]
    run_main(module, lambda result: maintain(module, result), {"changed": False, "operations": {}}, action,
             subject=module.params["path"], describe=explain(action))


if __name__ == "__main__":
    main()
