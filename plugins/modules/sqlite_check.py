#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: sqlite_check
short_description: Check a SQLite database's integrity and foreign keys, read-only
version_added: 0.1.0
description:
  - Runs C(PRAGMA integrity_check) (or the faster C(quick_check)) and
    C(PRAGMA foreign_key_check) on a SQLite database and reports its facts
    (size, pages, journal mode, tables with row counts, schema hash).
  - Replaces a hand-run C(sqlite3 bot_data.db "PRAGMA integrity_check")
    and their "orphaned records" queries.
  - The file is opened read-only (URI C(mode=ro)), so the module never modifies a
    database, even a damaged one. It never reports C(changed).
  - Uses Python's C(sqlite3) on the managed host; no sqlite3 CLI is needed.
author:
  - botops.runbook developers (@botops)
attributes:
  check_mode:
    support: full
    description: The module is read-only; check mode runs the same checks.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
options:
  path:
    description: Path of the SQLite database file on the managed host.
    type: path
    required: true
  integrity:
    description:
      - C(full) runs C(PRAGMA integrity_check), which also verifies indexes against
        their tables.
      - C(quick) runs C(PRAGMA quick_check), much faster on large files.
      - C(none) skips the integrity check.
    type: str
    choices: [full, quick, none]
    default: full
  foreign_keys:
    description: Run C(PRAGMA foreign_key_check) and report orphaned rows.
    type: bool
    default: true
  row_counts:
    description: Count the rows of every table (exact C(count(*)); slower on big tables).
    type: bool
    default: true
  max_problems:
    description: Report at most this many problems of each kind.
    type: int
    default: 100
  fail_on_problems:
    description:
      - Fail the task when a problem is found.
      - With C(false) the result still carries RV(ok=false) and the list of problems,
        for plays that want to record or alert instead.
    type: bool
    default: true
  busy_timeout:
    description: Milliseconds to wait for a lock held by another connection.
    type: int
    default: 5000
notes:
  - A database in WAL mode is read together with its C(-wal) file, so the check
    sees every committed transaction.
seealso:
  - name: SQLite PRAGMA integrity_check
    description: What the integrity check verifies.
    link: https://www.sqlite.org/pragma.html#pragma_integrity_check
"""

EXAMPLES = r"""
- name: Check the bot database (a weekly integrity check)
  botops.runbook.sqlite_check:
    path: /srv/reminder-bot/shared/data/bot_data.db

- name: Quick check, record the outcome instead of failing
  botops.runbook.sqlite_check:
    path: /srv/games/shared/data/games.db
    integrity: quick
    fail_on_problems: false
  register: games_check

- name: Alert on orphaned rows
  ansible.builtin.debug:
    msg: "{{ games_check.foreign_key_problems | length }} orphaned rows"
  when: not games_check.ok
"""

RETURN = r"""
ok:
  description: True when no integrity or foreign-key problem was found.
  returned: always
  type: bool
  sample: true
problems:
  description: Every problem found, as readable lines (integrity first, then foreign keys).
  returned: always
  type: list
  elements: str
  sample: ["orphaned row 7 in table 'messages' (no parent in 'users')"]
integrity:
  description: The integrity check's verdict, C(ok), C(problems) or C(skipped).
  returned: always
  type: str
  sample: ok
integrity_problems:
  description: Lines that C(integrity_check) or C(quick_check) returned other than C(ok).
  returned: always
  type: list
  elements: str
  sample: []
foreign_key_problems:
  description: Orphaned rows from C(PRAGMA foreign_key_check).
  returned: always
  type: list
  elements: dict
  sample: [{"table": "messages", "rowid": 7, "parent": "users", "fkid": 0}]
size:
  description: Size of the database file in bytes (without its C(-wal)).
  returned: when the database could be read
  type: int
  sample: 1048576
page_size:
  description: The database page size in bytes.
  returned: when the database could be read
  type: int
  sample: 4096
page_count:
  description: Number of pages in the database.
  returned: when the database could be read
  type: int
  sample: 256
freelist_count:
  description: Number of unused pages (space a VACUUM would return).
  returned: when the database could be read
  type: int
  sample: 0
journal_mode:
  description: The database's journal mode.
  returned: when the database could be read
  type: str
  sample: wal
tables:
  description: Row count of every user table (null where a table could not be read).
  returned: when the database could be read and O(row_counts=true)
  type: dict
  sample: {"users": 120, "messages": 5400}
schema_hash:
  description: sha256 of the schema; equal hashes mean equal schemas.
  returned: when the database could be read
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
sqlite_version:
  description: Version of the SQLite library that ran the check.
  returned: when the database could be read
  type: str
  sample: 3.40.1
elapsed:
  description: Seconds the check took.
  returned: always
  type: float
  sample: 0.42
"""

import sqlite3

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botops.runbook.plugins.module_utils._run import run_main
from ansible_collections.botops.runbook.plugins.module_utils._sqlite import (
    SqliteError,
    connect,
    describe_error,
    facts,
    foreign_key_check,
    integrity_check,
    tune_for_scan,
)


def run_checks(conn, params):
    result = {"integrity": "skipped", "integrity_problems": [], "foreign_key_problems": []}
    if params["integrity"] != "none":
        ok, problems = integrity_check(conn, quick=params["integrity"] == "quick", max_problems=params["max_problems"])
        result["integrity"] = "ok" if ok else "problems"
        result["integrity_problems"] = problems
    if params["foreign_keys"]:
        result["foreign_key_problems"] = foreign_key_check(conn, max_problems=params["max_problems"])
    return result


def describe_orphan(row):
    return "orphaned row %s in table '%s' (no parent in '%s')" % (row["rowid"], row["table"], row["parent"])


def check(module, result):
    params = module.params
    path = params["path"]
    if params["max_problems"] < 1:
        raise SqliteError("max_problems must be 1 or more, got %d" % params["max_problems"])
    conn = connect(path, readonly=True, busy_timeout=params["busy_timeout"])
    try:
        tune_for_scan(conn)
        result.update(run_checks(conn, params))
        result.update(facts(conn, path, with_rows=params["row_counts"]))
    except sqlite3.Error as exc:
        # A damaged page can surface while reading facts, after the checks ran.
        result["integrity"] = "problems"
        result["integrity_problems"] = result.get("integrity_problems", []) + [
            "reading the database failed: %s" % describe_error(exc)]
    finally:
        conn.close()

    result["problems"] = result["integrity_problems"] + [describe_orphan(r) for r in result["foreign_key_problems"]]
    result["ok"] = not result["problems"]
    if not result["ok"] and params["fail_on_problems"]:
        first = result["problems"][0]
        more = len(result["problems"]) - 1
        raise SqliteError("integrity check of database '%s' found %d problem(s): %s%s; restore from the latest "
                          "verified backup, or run with fail_on_problems=false to only report"
                          % (path, len(result["problems"]), first, " (and %d more)" % more if more else ""))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            integrity=dict(type="str", choices=["full", "quick", "none"], default="full"),
            foreign_keys=dict(type="bool", default=True),
            row_counts=dict(type="bool", default=True),
            max_problems=dict(type="int", default=100),
            fail_on_problems=dict(type="bool", default=True),
            busy_timeout=dict(type="int", default=5000),
        ),
        supports_check_mode=True,
    )
    run_main(module, lambda result: check(module, result), {"changed": False, "ok": False},
             "integrity check of '%s'" % module.params["path"], subject=module.params["path"])


if __name__ == "__main__":
    main()
