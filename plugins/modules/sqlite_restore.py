#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: sqlite_restore
short_description: Restore a SQLite database from a verified backup, safely and atomically
version_added: 0.1.0
description:
  - Restores a backup written by M(botops.runbook.sqlite_backup) (plain, gzip or zstd)
    to a database path. Replaces a C(cp backup.db bot_data.db) over a live
    database.
  - Before the live database is touched, the backup file is checked against its
    manifest's sha256 and the decompressed candidate passes an integrity check;
    either failure refuses the restore.
  - A safety copy of the current database (checkpointed, so it holds what its
    C(-wal) held) is kept beside it and its path returned, unless O(safety_copy=false).
  - The candidate is written beside the target, fsynced, stale C(-wal) and C(-shm)
    files are removed, and it is renamed into place. An integrity check follows; on
    failure the safety copy goes back and the task fails.
  - Refuses while another process has the database open, naming it, unless
    O(force=true). Roles stop the bot first.
author:
  - botops.runbook developers (@botops)
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    description: Runs every verification (manifest, checksum, decompression, integrity) and writes nothing.
  diff_mode:
    support: none
    description: Databases are binary; the result reports row counts instead.
options:
  src:
    description: The backup file (C(.db), C(.db.gz) or C(.db.zst)).
    type: path
    required: true
  path:
    description: The database to restore to. Its directory must exist.
    type: path
    required: true
  manifest:
    description: The backup's manifest. Defaults to O(src) plus C(.manifest.json).
    type: path
  require_manifest:
    description:
      - Refuse a backup without a manifest. With C(false), a backup that has no
        manifest is checked for integrity only (its checksum cannot be verified).
    type: bool
    default: true
  safety_copy:
    description: Keep a copy of the current database before replacing it.
    type: bool
    default: true
  safety_copy_dir:
    description: Where the safety copy goes; defaults to the database's directory.
    type: path
  force:
    description: Restore even while another process has the database open.
    type: bool
    default: false
  verify:
    description: Integrity check of the candidate and of the restored database.
    type: str
    choices: [integrity_check, quick_check]
    default: integrity_check
  busy_timeout:
    description: Milliseconds to wait for a lock when checkpointing the current database.
    type: int
    default: 10000
  decrypt_identity:
    description:
      - Private key file (C(age) identity) for an encrypted backup (C(.age)). It is read at
        restore time only; a key that is not one of the backup's recipients is refused clearly.
    type: path
  lock_timeout:
    description:
      - Seconds to wait when a backup or another restore of the same database is running,
        before failing with a clear error.
      - The database is locked with the file C(.<name>.botops.lock) beside it, the lock
        M(botops.runbook.sqlite_backup) takes (owned like the database, so root and the
        bot's user exclude each other; a file of any other owner, or a symlink, is refused).
    type: int
    default: 300
notes:
  - Owner, group and mode of the restored file come from the file it replaces, unless
    O(owner), O(group) or O(mode) are given (C(0600) for a new file).
  - Idempotent - when the database file already has exactly the backup's content
    (and no pending C(-wal)), nothing is done and C(changed) is C(false).
seealso:
  - module: botops.runbook.sqlite_backup
"""

EXAMPLES = r"""
- name: Stop the bot before restoring
  ansible.builtin.systemd_service:
    name: reminder-bot
    state: stopped

- name: Restore the pre-deploy backup
  botops.runbook.sqlite_restore:
    src: "{{ pre_deploy_backup.dest }}"
    path: /srv/reminder-bot/shared/data/bot_data.db
  register: restored

- name: Say where the previous state was kept
  ansible.builtin.debug:
    msg: "The database before the restore is in {{ restored.safety_copy }}"
"""

RETURN = r"""
path:
  description: The restored database.
  returned: always
  type: str
  sample: /srv/reminder-bot/shared/data/bot_data.db
src:
  description: The backup restored from.
  returned: always
  type: str
  sample: /var/backups/botops/reminder-bot/sqlite-bot_data/bot_data_20261122T031500Z.db.zst
safety_copy:
  description: Path of the copy of the database as it was before the restore, or null.
  returned: always
  type: str
  sample: /srv/reminder-bot/shared/data/bot_data.pre-restore-20261122T101500Z.db
checksum:
  description: sha256 of the restored database file.
  returned: always
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
tables:
  description: Row count of every table in the restored database.
  returned: always
  type: dict
  sample: {"users": 120, "messages": 5400}
manifest_tables:
  description: Row counts the manifest recorded at backup time, for comparison.
  returned: when a manifest was read
  type: dict
  sample: {"users": 120, "messages": 5400}
integrity:
  description: Verdict of the integrity check on the restored database.
  returned: always
  type: str
  sample: ok
elapsed:
  description: Seconds the restore took.
  returned: always
  type: float
  sample: 2.1
"""

import errno
import os
import shutil
import sqlite3
import stat

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botops.runbook.plugins.module_utils._backupset import BackupSetReader
from ansible_collections.botops.runbook.plugins.module_utils._files import (
    BackupError,
    fsync_dir,
    publish,
    remove_quietly,
    sha256_file,
    temp_path,
)
from ansible_collections.botops.runbook.plugins.module_utils._lock import FileLock
from ansible_collections.botops.runbook.plugins.module_utils._manifest import utc_now
from ansible_collections.botops.runbook.plugins.module_utils._run import run_main
from ansible_collections.botops.runbook.plugins.module_utils._sqlite import (
    SqliteError,
    check_database_file,
    connect,
    explain,
    integrity_check,
    row_counts,
    tune_for_scan,
    uri,
)

SIDE_FILES = ("-wal", "-shm", "-journal")


def processes_using(path):
    """[(pid, command)] of other processes with ``path`` (or its -wal/-shm) open."""
    targets = {os.path.realpath(path) + suffix for suffix in ("",) + SIDE_FILES}
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        fd_dir = "/proc/%s/fd" % pid
        try:
            links = [os.readlink(os.path.join(fd_dir, fd)) for fd in os.listdir(fd_dir)]
        except OSError:
            continue  # gone, or not ours to read
        if targets.intersection(links):
            try:
                with open("/proc/%s/comm" % pid) as handle:
                    command = handle.read().strip()
            except OSError:
                command = "?"
            found.append((int(pid), command))
    return found


def check_candidate(candidate, quick, src):
    try:
        check_database_file(candidate, action="restore from")
        conn = sqlite3.connect(uri(candidate, "ro"), uri=True)
        try:
            tune_for_scan(conn)
            ok, problems = integrity_check(conn, quick=quick)
            tables = row_counts(conn) if ok else {}
        finally:
            conn.close()
    except (SqliteError, sqlite3.Error) as exc:
        ok, problems, tables = False, [str(exc)], {}
    if not ok:
        raise BackupError("backup '%s' failed its integrity check (%s); the database was not touched"
                          % (src, "; ".join(problems[:3])))
    return tables


def already_restored(path, candidate_sha256):
    if not os.path.exists(path):
        return False
    wal = path + "-wal"
    if os.path.exists(wal) and os.path.getsize(wal) > 0:
        return False
    return sha256_file(path) == candidate_sha256


def safety_copy_name(path, directory):
    """``<stem>.pre-restore-<time><ext>`` in ``directory``, or ``-2``, ``-3``... before
    the extension when an earlier safety copy (two restores in one second) has it.
    Only a file is kept: a symlink the bot planted there is replaced by the rename."""
    stem, ext = os.path.splitext(os.path.basename(path))
    base = os.path.join(directory, "%s.pre-restore-%s" % (stem, utc_now().strftime("%Y%m%dT%H%M%SZ")))
    target, number = base + ext, 1
    while os.path.lexists(target) and not os.path.islink(target):
        number += 1
        target = "%s-%d%s" % (base, number, ext)
    return target


def copy_file_itself(source, target):
    """Copy the file ``source`` to ``target``, never through a symlink (the bot may plant
    one under any name in its directory). False when ``source`` is a symlink."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return False
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise BackupError("cannot keep a safety copy of '%s': it is not a regular file" % source)
        with open(target, "wb") as out:
            shutil.copyfileobj(handle, out, 1024 * 1024)
    return True


def make_safety_copy(path, directory, busy_timeout, scratch):
    """A consistent copy of the current database (its WAL folded in), 0600. Beside
    the database it is written in the private staging directory (``scratch``) and
    renamed into place: the bot may write there, and must not be able to point a
    name this root process writes (or, for a damaged database, reads) at another file."""
    target = safety_copy_name(path, directory)
    beside = os.path.realpath(directory) == os.path.realpath(os.path.dirname(os.path.abspath(path)))
    temp = scratch("safety") if beside else temp_path(target)
    try:
        try:
            src = connect(path, readonly=False, busy_timeout=busy_timeout)
            try:
                src.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                dst = sqlite3.connect(temp)
                try:
                    src.backup(dst, pages=-1)
                finally:
                    dst.close()
            finally:
                src.close()
        except (SqliteError, sqlite3.Error):
            # A damaged database cannot be read page by page: keep its bytes as they are.
            if not copy_file_itself(path, temp):
                raise BackupError("cannot keep a safety copy of '%s': SQLite cannot read it and it is a symlink, "
                                  "which is not followed; restore to the file itself, or set safety_copy=false"
                                  % path)
            for suffix in ("-wal", "-shm"):
                if os.path.lexists(path + suffix):
                    side = scratch("safety" + suffix) if beside else temp_path(target + suffix)
                    if copy_file_itself(path + suffix, side):  # SQLite never uses a symlinked -wal either
                        os.chmod(side, 0o600)
                        publish(side, target + suffix)
                    else:
                        remove_quietly(side)
        os.chmod(temp, 0o600)
        publish(temp, target)
    finally:
        remove_quietly(temp)
    return target


def swap_in(candidate, path):
    """Remove stale side files (durably: a power cut must not bring the old
    database's -wal back beside the restored one, which would replay it), then
    rename the candidate over the database."""
    removed = [remove_quietly(path + suffix) for suffix in SIDE_FILES]
    if any(removed):
        fsync_dir(os.path.dirname(os.path.abspath(path)))
    publish(candidate, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def restore(module, result):
    params = module.params
    src, path = params["src"], params["path"]
    quick = params["verify"] == "quick_check"
    directory = os.path.dirname(os.path.abspath(path))
    # The candidate is unpacked in a private directory beside the database, so
    # that putting it in place is a rename within one file system.
    with BackupSetReader(module, src, params["manifest"], params["require_manifest"], staging_near=directory) as backup:
        if not os.path.isdir(directory):
            raise BackupError("cannot restore to '%s': directory '%s' does not exist" % (path, directory))
        if os.path.isdir(backup.src):
            raise BackupError("cannot restore from '%s': it is a directory, not a SQLite backup file" % src)
        backup.verify()
        if backup.manifest:
            result["manifest_tables"] = backup.manifest.get("tables", {})
        candidate, candidate_sha256 = backup.unpack(backup.plaintext(params["decrypt_identity"]))
        tables = check_candidate(candidate, quick, src)
        result.update(checksum=candidate_sha256, tables=tables, integrity="ok")
        if module.check_mode:
            put_in_place(module, backup, candidate, candidate_sha256, result)
            return
        # The lock sqlite_backup takes: a restore waits for a backup of the database
        # (which holds it open) instead of refusing, and two restores never replace
        # each other's database or safety copy half-way.
        with FileLock(os.path.realpath(path), "'%s'" % path, params["lock_timeout"],
                      activity="backup or restore of") as lock:
            put_in_place(module, backup, candidate, candidate_sha256, result)
            lock.follow_owner()  # a database restored to a new path: its owner's backups take the lock too


def put_in_place(module, backup, candidate, candidate_sha256, result):
    """Unless the database already is the candidate: refuse while it is open, then
    (not in check mode) the owner and mode, the safety copy, the swap, the check."""
    params = module.params
    path = params["path"]
    directory = os.path.dirname(os.path.abspath(path))
    if already_restored(path, candidate_sha256):
        return
    users = processes_using(path) if os.path.exists(path) else []
    if users and not params["force"]:
        raise BackupError("refusing to restore '%s': it is open by %s; stop the bot first (roles do) or set "
                          "force=true" % (path, ", ".join("%s (pid %d)" % (cmd, pid) for pid, cmd in users)))
    result["changed"] = True
    if module.check_mode:
        return

    # Owner and mode: the options, else the file being replaced, else 0600.
    file_args = module.load_file_common_arguments(params, path=candidate)
    if os.path.exists(path):
        old = os.stat(path)
        os.chown(candidate, old.st_uid, old.st_gid)
        os.chmod(candidate, old.st_mode & 0o7777)
    elif file_args["mode"] is None:
        file_args["mode"] = "0600"
    module.set_fs_attributes_if_different(file_args, False)

    if os.path.exists(path) and params["safety_copy"]:
        result["safety_copy"] = make_safety_copy(path, params["safety_copy_dir"] or directory,
                                                 params["busy_timeout"], backup.scratch)
    attributes = os.stat(candidate)
    swap_in(candidate, path)
    check_restored(path, params["verify"] == "quick_check", result["safety_copy"], backup.scratch("put-back"),
                   attributes)


def check_restored(path, quick, back, temp, attributes):
    """The database in place passes its check, or the safety copy goes back (in the
    staging file ``temp``) with the owner and mode the database had."""
    conn = sqlite3.connect(uri(path, "ro"), uri=True)
    try:
        ok, problems = integrity_check(conn, quick=quick)
    finally:
        conn.close()
    if not ok:
        # The safety copy's name is in a directory the bot may write: never followed.
        put_back = bool(back) and copy_file_itself(back, temp)
        if put_back:
            os.chown(temp, attributes.st_uid, attributes.st_gid)
            os.chmod(temp, stat.S_IMODE(attributes.st_mode))
            swap_in(temp, path)
        if put_back:
            done = "the safety copy %s was put back" % back
        elif back:
            done = "the safety copy %s is now a symlink, which is not followed: nothing was put back" % back
        else:
            done = "no safety copy was kept"
        raise BackupError("restored database '%s' failed its integrity check after the swap (%s); %s"
                          % (path, "; ".join(problems[:3]), done))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", required=True),
            path=dict(type="path", required=True),
            manifest=dict(type="path"),
            require_manifest=dict(type="bool", default=True),
            safety_copy=dict(type="bool", default=True),
            safety_copy_dir=dict(type="path"),
            force=dict(type="bool", default=False),
            verify=dict(type="str", choices=["integrity_check", "quick_check"], default="integrity_check"),
            busy_timeout=dict(type="int", default=10000),
            decrypt_identity=dict(type="path"),
            lock_timeout=dict(type="int", default=300),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    path = module.params["path"]
    result = {"changed": False, "path": path, "src": module.params["src"], "safety_copy": None}
    action = "restore of '%s'" % path
    run_main(module, lambda res: restore(module, res), result, action, subject=path, describe=explain(action))


if __name__ == "__main__":
    main()
