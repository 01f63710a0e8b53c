#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: sqlite_backup
short_description: Online-consistent, verified, atomic backup of a live SQLite database
version_added: 0.1.0
description:
  - Copies a SQLite database while the bot keeps running, through the SQLite backup
    API in one step, so the copy is one consistent snapshot (a stepped copy such as
    the C(sqlite3 .backup) command restarts on every write and may never finish
    under a busy bot). O(method=vacuum_into) writes a compacted copy instead.
  - The copy is verified with C(PRAGMA integrity_check) (or C(quick_check)) before it
    is kept; a copy that fails leaves nothing under the final name and fails the task.
  - Writes a manifest beside the backup (JSON, shared with the PostgreSQL modules) with
    engine, source, host, time, size and sha256, uncompressed size, SQLite version,
    page size, journal mode, row counts per table, schema hash, the verification.
  - Replaces a C(cp bot_data.db backup/) of a live database, which can
    give a stale or corrupt copy of a WAL database.
  - Uses Python's C(sqlite3) on the managed host; no sqlite3 CLI is needed.
author:
  - botops.runbook developers (@botops)
extends_documentation_fragment:
  - ansible.builtin.files
  - botops.runbook.backup_destination
attributes:
  check_mode:
    support: full
    description:
      - Opens the source, checks that the destination directory exists, is writable
        and has room for the backup, and predicts C(changed=true); writes nothing.
  diff_mode:
    support: none
    description: A backup creates a new file; there is nothing to diff.
options:
  path:
    description: Path of the live SQLite database to back up.
    type: path
    required: true
  method:
    description:
      - C(backup) copies every page with the online backup API in one step.
      - C(vacuum_into) runs C(VACUUM INTO), a compacted and defragmented copy
        (slower, and smaller when the database has free pages).
    type: str
    choices: [backup, vacuum_into]
    default: backup
  verify:
    description:
      - How the copy is checked before it is kept; the manifest records which check ran.
      - C(quick_check) (the default) proves that the copy is a sound database file -
        every page, every b-tree and the free list, in time linear in its size. A copy
        made by SQLite's backup API is a page-for-page image of a consistent snapshot,
        so this is what a backup must prove, and it keeps a pre-deploy backup (taken
        while the bot is stopped) short.
      - C(integrity_check) also checks every index against its table, which takes
        several times longer on a large file. The scheduled proofs run it anyway -
        M(botops.runbook.sqlite_restore), the C(restore_drill) role and
        C(playbooks/check.yml).
    type: str
    choices: [integrity_check, quick_check]
    default: quick_check
  journal_mode:
    description:
      - Set to C(wal) to switch the source database to WAL mode before the backup.
      - In rollback-journal mode every consistent copy blocks the bot's writes for
        its whole duration; in WAL mode it never does. Leave unset to keep the mode.
    type: str
    choices: [wal]
  busy_timeout:
    description: Milliseconds to wait for a lock held by the bot before giving up.
    type: int
    default: 10000
notes:
  - In rollback-journal (C(delete)) mode the copy holds a read lock, so the bot's
    writes wait until it ends; the module warns with the expected duration. Use
    O(journal_mode=wal) here or in M(botops.runbook.sqlite_vacuum) to avoid it.
  - The backup is a self-contained file in C(delete) journal mode (no C(-wal) needed).
seealso:
  - module: botops.runbook.sqlite_check
  - name: SQLite online backup API
    description: How the one-step copy keeps a consistent snapshot.
    link: https://www.sqlite.org/backup.html
"""

EXAMPLES = r"""
- name: Back up the bot database before a deploy
  botops.runbook.sqlite_backup:
    path: /srv/reminder-bot/shared/data/bot_data.db
    dest_dir: /var/backups/botops/reminder-bot/sqlite-bot_data
    bot: reminder-bot
  register: pre_deploy_backup

- name: Nightly compacted copy with gzip, owned by the backup user
  botops.runbook.sqlite_backup:
    path: /srv/games/shared/data/games.db
    dest_dir: /var/backups/botops/games
    method: vacuum_into
    compression: gzip
    owner: backup
    mode: "0640"

- name: Switch an old rollback-journal database to WAL on its first backup
  botops.runbook.sqlite_backup:
    path: /srv/discord/discord_bot.db
    dest: /var/backups/discord_bot-latest.db.zst
    journal_mode: wal
"""

RETURN = r"""
dest:
  description: Path of the backup file.
  returned: always
  type: str
  sample: /var/backups/botops/reminder-bot/bot_data_20261122T031500Z.db.zst
manifest:
  description: Path of the backup's manifest.
  returned: always
  type: str
  sample: /var/backups/botops/reminder-bot/bot_data_20261122T031500Z.db.zst.manifest.json
size:
  description: Size of the backup file in bytes, as written.
  returned: success, not in check mode
  type: int
  sample: 4194304
checksum:
  description: sha256 of the backup file as written.
  returned: success, not in check mode
  type: str
  sample: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
uncompressed_size:
  description: Size of the database copy before compression.
  returned: success, not in check mode
  type: int
  sample: 8388608
compression:
  description: The compression used (C(auto) resolved).
  returned: always
  type: str
  sample: zstd
source_size:
  description: Size of the source database file (plus its C(-wal)) in bytes.
  returned: always
  type: int
  sample: 8421376
tables:
  description: Row count of every table in the copy.
  returned: success, not in check mode
  type: dict
  sample: {"users": 120, "messages": 5400}
integrity:
  description: The verification's verdict on the copy.
  returned: success, not in check mode
  type: str
  sample: ok
journal_mode:
  description: The source database's journal mode (after O(journal_mode) was applied).
  returned: always
  type: str
  sample: wal
series:
  description:
    - The set's series - the key (bot, engine, database), its C(id)
      (C(<bot>/<engine>-<database>)) and the directory C(dir) the set is in.
  returned: success
  type: dict
  sample: {"bot": "reminder-bot", "engine": "sqlite", "database": "bot_data",
           "id": "reminder-bot/sqlite-bot_data", "dir": "/var/backups/botops/reminder-bot/sqlite-bot_data"}
elapsed:
  description: Seconds the backup took, verification included.
  returned: always
  type: float
  sample: 1.7
"""

import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botops.runbook.plugins.module_utils._backupset import (
    BackupSetWriter,
    backup_module_args,
    resolve_compression,
)
from ansible_collections.botops.runbook.plugins.module_utils._files import BackupError
from ansible_collections.botops.runbook.plugins.module_utils._run import run_main
from ansible_collections.botops.runbook.plugins.module_utils._sqlite import (
    check_copy,
    connect,
    describe_failure,
    plain_path,
    switch_to_wal,
)

# Rough one-step copy speed, for the warning about blocked writers in delete mode.
EXPECTED_BYTES_PER_SECOND = 300 * 1024 * 1024


def source_size(path):
    wal = path + "-wal"
    return os.path.getsize(path) + (os.path.getsize(wal) if os.path.exists(wal) else 0)


def copy_pages(src, copy_path, method):
    """One consistent snapshot of ``src`` into the empty file ``copy_path``."""
    copy_path = plain_path(copy_path)  # one SQLite can open, or a clear refusal
    if method == "vacuum_into":
        src.execute("VACUUM INTO ?", (copy_path,))
        return
    dst = sqlite3.connect(copy_path)
    try:
        # The copy is a temporary file until it is verified and published (fsync,
        # rename, fsync), and a crash leaves nothing of it that counts: no journal
        # and no sync of SQLite's own, which would flush the whole file in series.
        dst.execute("PRAGMA journal_mode = OFF")
        dst.execute("PRAGMA synchronous = OFF")
        src.backup(dst, pages=-1)  # all pages in one step: one read transaction, one snapshot
    finally:
        dst.close()


def make_standalone(copy_path):
    """The copy carries the source's WAL flag: make it one self-contained file
    (without a sync: the copy is flushed once, beside its verification)."""
    conn = sqlite3.connect(copy_path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA journal_mode = DELETE")
    finally:
        conn.close()


def take_backup(backup, src, params, compression, source):
    """Snapshot; verify while compressing; seal; publish; then the manifest."""
    copy = backup.temp()
    copy_pages(src, copy, params["method"])
    make_standalone(copy)
    # The check runs beside the hashing and the compression (or the flush to
    # disk): SQLite, hashlib, zstandard and fsync release the GIL while they work.
    with ThreadPoolExecutor(max_workers=2) as pool:
        verified = pool.submit(check_copy, copy, params["verify"] == "quick_check")
        out, size, checksum, plain_sha256 = backup.file_of_copy(copy, compression, pool)
        ok, problems, copy_facts = verified.result()
    if not ok:
        raise BackupError("backup of '%s' failed its %s (%s); nothing was kept under '%s'"
                          % (params["path"], params["verify"], "; ".join(problems[:3]), backup.final))
    uncompressed_size = os.path.getsize(copy)
    if out != copy:
        backup.discard(copy)
    out, encryption = backup.seal(out, plain_size=size, plain_sha256=checksum)
    entry = backup.add(out, **({} if encryption else {"size": size, "sha256": checksum}))
    backup.commit(
        compression=compression, encryption=encryption, uncompressed_size=uncompressed_size,
        uncompressed_sha256=plain_sha256, tables=copy_facts["tables"], schema_hash=copy_facts["schema_hash"],
        verified={"method": params["verify"], "ok": True},
        source={"path": params["path"], "size": source["size"], "sqlite_version": copy_facts["sqlite_version"],
                "page_size": copy_facts["page_size"], "journal_mode": source["journal_mode"],
                "method": params["method"]})
    return {"size": entry["size"], "checksum": entry["sha256"], "uncompressed_size": uncompressed_size,
            "tables": copy_facts["tables"], "integrity": "ok"}


def refuse_dest_over_database(dest, path):
    """A destination that is the database (by any path) or one of its side files
    would replace the live data with its own backup."""
    real = os.path.realpath(path)
    target = os.path.realpath(dest)
    same = target in [real + suffix for suffix in ("", "-wal", "-shm", "-journal")]
    if not same and os.path.exists(dest) and os.path.exists(path):
        same = os.path.samefile(dest, path)
    if same:
        raise BackupError("refusing to back up '%s' to '%s': the destination is the database itself or one of its "
                          "-wal/-shm/-journal files; choose a destination outside them (dest_dir or backup_root)"
                          % (path, dest))


def open_source(path, params, check_mode=False):
    """The database opened read-only, and its facts (size, journal mode), after the
    switch to WAL that ``journal_mode: wal`` asks for (in check mode: reported as
    if made)."""
    src = connect(path, readonly=True, busy_timeout=params["busy_timeout"])
    journal_mode = src.execute("PRAGMA journal_mode").fetchone()[0]
    if params["journal_mode"] == "wal" and journal_mode != "wal":
        src.close()
        journal_mode = "wal" if check_mode else switch_to_wal(path, params["busy_timeout"])
        src = connect(path, readonly=True, busy_timeout=params["busy_timeout"])
    return src, {"size": source_size(path), "journal_mode": journal_mode}


def back_up(module, result):
    params = module.params
    path = params["path"]
    if params["dest"]:
        refuse_dest_over_database(params["dest"], path)
    stem, ext = os.path.splitext(os.path.basename(path))
    compression = resolve_compression(params["compression"])
    src, source = open_source(path, params, module.check_mode)
    try:
        with BackupSetWriter(module, "sqlite", stem, stem, ext or ".db", compression) as backup:
            # Room for the uncompressed snapshot, plus the compressed file beside it.
            backup.check_space(source["size"] * (1 if compression == "none" else 2))
            result.update(changed=True, dest=backup.predict(), compression=compression, series=backup.series,
                          source_size=source["size"], journal_mode=source["journal_mode"])
            result["manifest"] = backup.manifest_for(result["dest"])
            if module.check_mode:
                return
            with backup.lock(os.path.realpath(path), "'%s'" % path):
                # Opened again holding the lock: a restore that held it until now
                # replaced the file, and the copy must be of the database it left
                # (its size and journal mode too).
                src.close()
                src, source = open_source(path, params)
                result.update(source_size=source["size"], journal_mode=source["journal_mode"])
                backup.check_space(source["size"] * (1 if compression == "none" else 2))
                if source["journal_mode"] != "wal":
                    module.warn("database '%s' is in rollback-journal (%s) mode: a consistent copy blocks the bot's "
                                "writes for its whole duration, expected about %.1f s for %d bytes; set journal_mode: "
                                "wal (sqlite_backup or sqlite_vacuum) so backups never block writers"
                                % (path, source["journal_mode"], source["size"] / float(EXPECTED_BYTES_PER_SECOND),
                                   source["size"]))
                result["dest"] = backup.reserve()
                result["manifest"] = backup.manifest_for(backup.final)
                try:
                    result.update(take_backup(backup, src, params, compression, source))
                except (OSError, sqlite3.Error) as exc:
                    raise BackupError(describe_failure(exc, "backup of '%s'" % path, backup.final))
    finally:
        src.close()


def main():
    module = AnsibleModule(**backup_module_args(dict(
        path=dict(type="path", required=True),
        method=dict(type="str", choices=["backup", "vacuum_into"], default="backup"),
        verify=dict(type="str", choices=["integrity_check", "quick_check"], default="quick_check"),
        journal_mode=dict(type="str", choices=["wal"]),
        busy_timeout=dict(type="int", default=10000),
    )))
    run_main(module, lambda result: back_up(module, result), {"changed": False},
             "backup of '%s'" % module.params["path"], subject=module.params["path"])


if __name__ == "__main__":
    main()
