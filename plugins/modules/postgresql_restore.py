#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: postgresql_restore
short_description: Restore a PostgreSQL backup set safely, into a new database or over an existing one
version_added: 0.1.0
description:
  - Restores a dump written by M(botops.runbook.postgresql_backup). The file is checked
    against its manifest (size and sha256 of every file) and C(pg_restore --list)
    before anything is touched; a corrupted or truncated dump is refused.
  - The safe default restores into a new database O(target_db), which is created.
  - Over an existing database O(db) (O(clean=true)), the current state is kept first -
    a safety backup (a verified custom dump beside the backup) unless
    O(safety_backup=false), or with O(rename_existing=true) the old database is renamed
    to C(<db>_pre_restore_<timestamp>), the fastest way back. Either way the database
    must be free - O(terminate_connections=true) ends other sessions, otherwise the
    module refuses and lists the connected applications.
  - O(tables) and O(schemas) restore part of a dump (custom and directory formats);
    O(jobs) restores in parallel (see O(jobs)).
  - ANALYZE runs after the restore, at the same time as the exact per-table row counts
    (two sessions), which are compared with the manifest's and returned next to them.
  - The checksums are proven before C(pg_restore) or C(psql) reads a byte; a dump's
    table of contents is SQL that runs as O(login_user), so a file its manifest does
    not vouch for never gets that far (a recovery pays one read of the file for it).
  - Replaces C(psql < dump.sql) and C(pg_restore -t messages) run by hand.
author:
  - botops.runbook developers (@botops)
extends_documentation_fragment:
  - botops.runbook.postgres
attributes:
  check_mode:
    support: full
    description: Verifies the backup against its manifest and with C(pg_restore --list), connects, and writes nothing.
  diff_mode:
    support: none
    description: Reports row counts instead.
options:
  src:
    description: The backup (a file, or the directory of a C(directory) dump).
    type: path
    required: true
  manifest:
    description: The backup's manifest; defaults to O(src) plus C(.manifest.json).
    type: path
  require_manifest:
    description: Refuse a backup without a manifest (its checksums cannot be verified).
    type: bool
    default: true
  target_db:
    description:
      - Restore into this new database, created by the module (the safe default way).
        A database of this name restored from the same backup gives C(changed=false);
        the half-made database of an earlier run of this restore that was killed (the module marks a database it
        makes until the restore is proven) is dropped and made again (RV(half_made_dropped)); any other existing
        database of this name is refused.
      - Without it, the restore goes over O(db) and needs O(clean=true).
    type: str
  owner:
    description: Owner of a database the module creates; defaults to O(login_user).
    type: str
  clean:
    description:
      - Restore over the existing database O(db) (C(pg_restore --clean --if-exists), in
        a single transaction when O(jobs=1)).
    type: bool
    default: false
  safety_backup:
    description: Before overwriting O(db), dump its current state beside the backup.
    type: bool
    default: true
  rename_existing:
    description:
      - Instead of overwriting, rename the existing O(db) to C(<db>_pre_restore_<timestamp>)
        and restore into a new O(db). A name that would not fit in 63 bytes is cut, at a character,
        and followed by 8 hex digits of a sha256 of the whole name, so that no two databases get one new name.
    type: bool
    default: false
  terminate_connections:
    description: End the other sessions of the database that is replaced or renamed.
    type: bool
    default: false
  tables:
    description: Restore only these tables (C(pg_restore --table)).
    type: list
    elements: str
    default: []
  schemas:
    description: Restore only these schemas (C(pg_restore --schema)).
    type: list
    elements: str
    default: []
  jobs:
    description:
      - Parallel restore jobs (custom and directory formats). C(pg_restore) runs jobs
        only from a file it can seek in, so a compressed custom dump is decompressed to
        a temporary file first and rows, indexes and constraints load in parallel - when
        the manifest's row counts show several large tables. When one table holds most
        of the rows, a second job would have no rows to load - the rows stream in one
        job and only the indexes and constraints are built in parallel.
    type: int
    default: 1
  row_counts:
    description:
      - C(auto) counts every table exactly (at the same time as ANALYZE) when the
        manifest's counts are exact, and compares the two for a whole restore; otherwise
        RV(tables) holds the estimates ANALYZE has just made, which costs no scan of the data.
      - C(exact) always counts exactly.
    type: str
    choices: [auto, exact]
    default: auto
  decrypt_identity:
    description: Private key file (C(age) identity) for an encrypted dump (C(.age)), read at restore time only.
    type: path
  no_owner:
    description: Do not restore ownership (C(--no-owner)); objects belong to O(login_user).
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait when another restore into the same database is running, before
        failing with a clear error.
      - The lock is a session advisory lock on the server, taken in the maintenance
        database C(postgres) where every restore connects, so restores from any host or
        user exclude each other; it is held while the dump is read and restored, from
        the first look at the target database to its marker. Not in check mode.
    type: int
    default: 300
notes:
  - The password reaches the tools through a private passfile, never their command line.
  - A plain SQL dump is fed to C(psql) in its restricted mode under a key made for the
    run, so a backslash command added to the dump (C(\!) runs a shell) fails the
    restore instead of running. This needs psql 15.14, 16.10, 17.6 or newer; an older
    client is refused for plain dumps.
  - Decrypted and decompressed copies live in the module's private temporary
    directory and are removed when it ends; the backup's directory is only read.
seealso:
  - module: botops.runbook.postgresql_backup
"""

EXAMPLES = r"""
- name: Restore last night's dump into a new database to look at it
  botops.runbook.postgresql_restore:
    src: /var/backups/botops/clip-saver/postgresql-clips/clips_20261122T031500Z.dump.zst
    db: clips
    target_db: clips_restored

- name: Put the messages table back from a dump (what pg_restore -t messages does by hand)
  botops.runbook.postgresql_restore:
    src: "{{ backup.dest }}"
    db: psychochauffeur
    target_db: psychochauffeur_messages
    tables: [messages]

- name: Roll the database back to the pre-deploy dump, keeping the current one renamed
  botops.runbook.postgresql_restore:
    src: "{{ pre_deploy_backup.dest }}"
    db: clips
    clean: true
    rename_existing: true
    terminate_connections: true
"""

RETURN = r"""
target_db:
  description: The database that was restored into.
  returned: always
  type: str
  sample: clips_restored
safety_backup:
  description: Path of the dump of the state before the restore, or null.
  returned: always
  type: str
  sample: /var/backups/botops/clip-saver/postgresql-clips/clips.pre-restore-20261122T101500Z.dump
half_made_dropped:
  description: Whether O(target_db) was the half-made database of an earlier, killed run of this restore, dropped to start
    again (would be, in check mode).
  returned: always
  type: bool
  sample: false
renamed_to:
  description: Name the old database was renamed to (O(rename_existing=true)), or null.
  returned: always
  type: str
  sample: clips_pre_restore_20261122T101500Z
tables:
  description: Row counts per table after the restore, exact or estimated (see RV(row_counts)).
  returned: success, not in check mode
  type: dict
  sample: {"public.clips": 250}
row_counts:
  description: Whether RV(tables) holds C(exact) counts or the C(estimate)s of ANALYZE.
  returned: always
  type: str
  sample: exact
manifest_tables:
  description: The row counts the manifest recorded.
  returned: when a manifest was read
  type: dict
  sample: {"public.clips": 250}
terminated:
  description: Sessions ended (O(terminate_connections=true)).
  returned: always
  type: list
  elements: dict
  sample: [{"pid": 4242, "application_name": "clip-saver", "usename": "clips"}]
elapsed:
  description: Seconds the restore took.
  returned: always
  type: float
  sample: 8.4
timings:
  description:
    - Seconds per phase - C(verify) (manifest checksums), C(read) (C(pg_restore --list),
      or the whole dump without a manifest), C(restore), C(analyze_and_count) - to see
      where a recovery's time goes.
  returned: always
  type: dict
  sample: {"verify": 0.4, "read": 0.05, "restore": 7.6, "analyze_and_count": 0.3}
"""

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botops.runbook.plugins.module_utils._backupset import BackupSetReader
from ansible_collections.botops.runbook.plugins.module_utils._files import BackupError, publish, remove_quietly, temp_path
from ansible_collections.botops.runbook.plugins.module_utils._manifest import (
    iso,
    manifest_path,
    new_manifest,
    utc_now,
    write_manifest,
)
from ansible_collections.botops.runbook.plugins.module_utils._series import check_addressable, check_component
from ansible_collections.botops.runbook.plugins.module_utils._postgres import (
    MAX_NAME_BYTES,
    PostgresClient,
    PostgresError,
    connection_argument_spec,
    count_differences,
    on_connection,
    psycopg2,
    sql,
    table_row_counts,
)
from ansible_collections.botops.runbook.plugins.module_utils._run import ModuleError, describe_os_error, run_main
from ansible_collections.botops.runbook.plugins.module_utils._workdir import private_cache

MARKER = "botops.runbook: restored from sha256 %s"
# A database this module made for a restore carries this until the restore is
# proven: a run killed on the spot leaves it, and a re-run of the same restore
# knows the database for its own half-made one and starts it again.
IN_PROGRESS = "botops.runbook: restore in progress from sha256 %s"


def backup_format(src, manifest):
    """custom, directory or plain: as the manifest says, else from the path."""
    if manifest and manifest.get("source", {}).get("format"):
        return manifest["source"]["format"]
    if os.path.isdir(src):
        return "directory"
    return "plain" if ".sql" in os.path.basename(src) else "custom"


class Timings(dict):
    """Seconds per phase: ``with timings.phase("restore"): ...``."""

    @contextmanager
    def phase(self, name):
        started = time.monotonic()
        try:
            yield
        finally:
            self[name] = round(self.get(name, 0) + time.monotonic() - started, 3)


def analyze_and_count(client, target, exact):
    """ANALYZE ``target``, and its row counts: exact ones counted at the same time
    on a second session, or the estimates that ANALYZE has just made."""
    def analyze(conn):
        with conn.cursor() as cur:
            cur.execute("ANALYZE")

    if not exact:
        return client.on_database(target, lambda conn: analyze(conn) or table_row_counts(conn), "ANALYZE")
    with ThreadPoolExecutor(max_workers=2) as pool:
        analyzed = pool.submit(client.on_database, target, analyze, "ANALYZE")
        counted = pool.submit(client.on_database, target, lambda conn: table_row_counts(conn, exact=True),
                              "counting the rows")
        analyzed.result()
        return counted.result()


def rows_spread_out(manifest):
    """True unless the manifest says one table holds most of the rows: only then
    can a second restore job load rows of its own."""
    counts = [rows for rows in ((manifest or {}).get("tables") or {}).values() if isinstance(rows, int) and rows > 0]
    return not counts or max(counts) * 2 <= sum(counts)


def set_marker(admin, name, fingerprint):
    with admin.cursor() as cur:
        cur.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(name), sql.Literal(fingerprint) if fingerprint else sql.SQL("NULL")))


def dropped_after(admin, name, cause, what):
    """``cause`` (an OSError put in words), once the half-made new database ``name``
    is dropped (or saying why it is not)."""
    if isinstance(cause, OSError):  # the scratch copy of a parallel restore
        cause = BackupError(describe_os_error(cause, what, cause.filename))
    try:
        on_connection(admin, lambda conn: conn.cursor().execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))), "DROP DATABASE")
    except PostgresError as exc:
        return PostgresError("%s; the half-made database '%s' could not be dropped (%s): drop it by hand"
                             % (cause, name, exc), **cause.details)
    return cause


def drop_half_made(admin, name):
    try:
        on_connection(admin, lambda conn: conn.cursor().execute(
            sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))), "DROP DATABASE")
    except PostgresError as exc:
        raise PostgresError("database '%s' is the half-made result of an earlier run of this restore that was killed, "
                            "and it could not be dropped to start again (%s): drop it by hand" % (name, exc))


def database_exists(admin, name):
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cur.fetchone() is not None


def restored_from(admin, name):
    with admin.cursor() as cur:
        cur.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,))
        row = cur.fetchone()
    return row[0] if row else None


def other_sessions(admin, name):
    with admin.cursor() as cur:
        cur.execute("""SELECT pid, coalesce(application_name, ''), coalesce(usename, ''), coalesce(client_addr::text, 'local')
                       FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()""", (name,))
        return [{"pid": pid, "application_name": app, "usename": user, "client_addr": addr}
                for pid, app, user, addr in cur.fetchall()]


def free_database(admin, name, terminate):
    """The database must have no other sessions: end them, or refuse and name them."""
    sessions = other_sessions(admin, name)
    if sessions and not terminate:
        raise PostgresError("database '%s' is in use by %s; stop the bot first, or set terminate_connections=true"
                            % (name, ", ".join("%s (pid %d, user %s, from %s)" % (
                                s["application_name"] or "an unnamed client", s["pid"], s["usename"], s["client_addr"])
                                for s in sessions)))
    with admin.cursor() as cur:
        for session in sessions:
            cur.execute("SELECT pg_terminate_backend(%s)", (session["pid"],))
    return sessions


def create_database(admin, name, owner, marker):
    """A new database for a restore, marked ``marker`` (IN_PROGRESS) at once."""
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
    set_marker(admin, name, marker)


def check_safety_name(db):
    """The database's name can name its safety dump file (checked before any
    session is ended or anything written), and a later module can be given it."""
    instead = "restore with rename_existing=true, or with safety_backup=false after a backup of your own"
    return check_addressable("database name", check_component("database name", db, instead), instead)


def safety_dump(client, directory, bot):
    """A custom-format dump of the current state in ``directory``, checked, 0600,
    with a manifest (in the series of ``bot``), so the catalog knows it as a set."""
    db = client.params["db"]
    created = utc_now()
    name = "%s.pre-restore-%s.dump" % (check_safety_name(db), created.strftime("%Y%m%dT%H%M%SZ"))
    target = os.path.join(directory, name)
    temp = temp_path(target)
    try:
        size, checksum, dummy = client.dump_to([client.binary("pg_dump"), "--format=custom"], temp, "none", None,
                                               "safety dump of database '%s'" % db, db=db)
        client.read_dump(temp, "custom", "none")
        os.chmod(temp, 0o600)
        publish(temp, target)
    finally:
        remove_quietly(temp)
    manifest = new_manifest("postgresql", db, created, bot=bot)
    manifest.update(files=[{"name": os.path.basename(target), "size": size, "sha256": checksum}],
                    verified={"method": "pg_restore --list", "ok": True, "at": iso(utc_now())},
                    source={"format": "custom", "purpose": "safety dump before a clean restore"})
    write_manifest(manifest_path(target), manifest)
    return target


@contextmanager
def restore_lock(admin, target, timeout, where, check_mode):
    """One restore into ``target`` at a time: a session advisory lock on ``admin``'s
    session (the maintenance database, where every restore connects; an advisory
    lock holds within one database only). Released when the block ends (or the
    session does). None in check mode, which changes nothing."""
    if check_mode:
        yield
        return
    key = "botops.runbook restore of %s" % target
    deadline = time.monotonic() + timeout
    with admin.cursor() as cur:
        while True:
            cur.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,))
            if cur.fetchone()[0]:
                break
            if time.monotonic() >= deadline:
                raise PostgresError("another restore into %s is still running (advisory lock held for more than %d s); "
                                    "wait for it to finish or raise lock_timeout" % (where, timeout))
            time.sleep(0.2)
    try:
        yield
    finally:
        try:
            with admin.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
        except psycopg2.Error:
            pass  # the session ends with the module, and its lock with it


def refuse_bad_requests(params, fmt, src):
    if (params["tables"] or params["schemas"]) and fmt == "plain":
        raise BackupError("tables/schemas need a custom or directory dump; '%s' is plain SQL" % src)
    if not params["target_db"] and not params["clean"]:
        raise BackupError("refusing to restore over the existing database '%s' without clean=true; restore "
                          "into a new database with target_db, or set clean=true" % params["db"])
    if params["clean"] and fmt == "plain" and not params["rename_existing"]:
        raise BackupError("a plain SQL dump cannot clean an existing database; set rename_existing=true or "
                          "restore into a new database with target_db")


def restore_options(params, fmt):
    if fmt == "plain":
        return ["--single-transaction"]  # psql: all of the SQL, or none of it
    options = ["--no-owner"] if params["no_owner"] else []
    options += ["--table=%s" % t for t in params["tables"]]
    options += ["--schema=%s" % s for s in params["schemas"]]
    if params["jobs"] == 1:
        options.append("--single-transaction")
    return options


def restore(module, client, result):
    params, timings = module.params, result["timings"]
    target = result["target_db"]
    # Decrypted and decompressed copies live in the module's private temporary
    # directory (removed when the module ends): backups may be on a read-only mount.
    with BackupSetReader(module, params["src"], params["manifest"], params["require_manifest"],
                         staging_near=private_cache() or module.tmpdir) as backup:
        manifest, src = backup.manifest, backup.src
        fmt = backup_format(src, manifest)
        if manifest:
            with timings.phase("verify"):  # before anything reads the dump, let alone restores it
                backup.verify()
            result["manifest_tables"] = manifest.get("tables", {})
        exact_manifest = bool(manifest) and manifest.get("row_counts") == "exact"
        compare = exact_manifest and not (params["tables"] or params["schemas"])
        result["row_counts"] = "exact" if exact_manifest or params["row_counts"] == "exact" else "estimate"
        compression = backup.compression
        backup.staging()  # before anything is renamed, dropped or ended
        plain = backup.plaintext(params["decrypt_identity"])
        refuse_bad_requests(params, fmt, plain)

        admin = client.connect(db="postgres")
        try:
            # Two restores into one new database would each take the other's for the
            # half-made database of a killed run, and drop it half-way.
            with restore_lock(admin, target, params["lock_timeout"], client.describe(target), module.check_mode), \
                    client:
                client.check_client("pg_restore", admin)
                with timings.phase("read"):
                    client.read_dump(plain, fmt, compression, whole=manifest is None)
                fingerprint = MARKER % (backup.fingerprint or "unknown")
                in_progress = IN_PROGRESS % (backup.fingerprint or "unknown")
                exists = database_exists(admin, target)
                if params["target_db"] and exists and manifest and restored_from(admin, target) == in_progress:
                    # A killed run of this very restore made it: never anyone else's data.
                    if not module.check_mode:
                        drop_half_made(admin, target)
                    result["half_made_dropped"], exists = True, False
                if params["target_db"] and exists:
                    if manifest and restored_from(admin, target) == fingerprint:
                        return  # already restored from this very backup
                    raise BackupError("target database '%s' already exists and was not restored from this backup; "
                                      "choose another target_db, or restore over it with clean=true" % target)
                if params["clean"] and not exists:
                    raise BackupError("database '%s' does not exist, so there is nothing to clean; use target_db to "
                                      "restore into a new database" % target)
                if params["clean"] and params["safety_backup"] and not params["rename_existing"]:
                    check_safety_name(target)
                result["changed"] = True
                if module.check_mode:
                    if params["clean"] and not params["terminate_connections"]:
                        free_database(admin, target, False)  # raises with the list of sessions; ends none
                    return
                options = restore_options(params, fmt)
                if not params["clean"] or params["rename_existing"]:  # a new database is made
                    require_role(admin, params["owner"] or params["login_user"])
                if params["clean"]:
                    result["terminated"] = free_database(admin, target, params["terminate_connections"])
                    if params["rename_existing"]:
                        result["renamed_to"] = rename_database(admin, target)
                    else:
                        if params["safety_backup"]:
                            result["safety_backup"] = safety_dump(client, os.path.dirname(os.path.abspath(src)),
                                                                  (manifest or {}).get("bot"))
                        options += ["--clean", "--if-exists"]
                else:
                    create_database(admin, target, params["owner"] or params["login_user"], in_progress)
                try:
                    if result["renamed_to"]:
                        create_database(admin, target, params["owner"] or params["login_user"], in_progress)
                    load(client, admin, backup, plain, fmt, options, result, compare)
                except (ModuleError, OSError) as exc:
                    if not result["renamed_to"]:
                        raise
                    error, back = put_back(admin, target, result["renamed_to"], exc, "restore of '%s'" % backup.src)
                    if back:
                        result["renamed_to"] = None
                    raise error
                # Marked only once it is proven: a re-run never takes a doubtful restore for done.
                set_marker(admin, target, fingerprint)
        finally:
            admin.close()


def load(client, admin, backup, plain, fmt, options, result, compare):
    """The dump into the target, analyzed and counted; a new database that fails
    half-way is dropped; counts that differ from an exact manifest fail."""
    params, timings, target = client.params, result["timings"], result["target_db"]
    if "--clean" in options:  # its old marker must not outlive a restore that fails
        set_marker(admin, target, None)
    what = "restore of '%s' into database '%s'" % (backup.src, target)
    try:
        with timings.phase("restore"):
            client.restore(plain, fmt, backup.compression, target, options=options, jobs=params["jobs"], what=what,
                           parallel_rows=rows_spread_out(backup.manifest), scratch=backup.scratch,
                           limit=backup.uncompressed_limit)
        with timings.phase("analyze_and_count"):
            result["tables"] = analyze_and_count(client, target, result["row_counts"] == "exact")
    except (ModuleError, OSError) as exc:
        if not params["clean"]:  # a half-made new database helps nobody: drop it
            raise dropped_after(admin, target, exc, what)
        raise
    if compare:
        differ = count_differences(backup.manifest.get("tables", {}), result["tables"])
        if differ:
            raise BackupError("database '%s' was restored but its row counts differ from the manifest's: %s%s"
                              % (target, differ, "" if result["renamed_to"] else
                                 "; it is kept, unmarked, for inspection"))


def require_role(admin, name):
    """The new database's owner exists, before anything is renamed or created."""
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
        if cur.fetchone() is None:
            raise PostgresError("role '%s' does not exist, so it cannot own the restored database; create it first "
                                "or give another owner" % name)


def put_back(admin, name, renamed, cause, what):
    """(error, put back): ``cause``, once the new ``name`` is dropped and the database
    renamed away for the restore has its name back (or saying where it is)."""
    if isinstance(cause, OSError):
        cause = BackupError(describe_os_error(cause, what, cause.filename))
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            cur.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(renamed), sql.Identifier(name)))
    except Exception as exc:  # pylint: disable=broad-except  # any driver error: say where the data is
        return PostgresError("%s; the previous database is still named '%s' and could not be put back (%s): rename "
                             "it to '%s' by hand" % (cause, renamed, str(exc).strip(), name), **cause.details), False
    return PostgresError("%s; nothing changed: the half-made restore was dropped and the previous database, renamed "
                         "to '%s' for the restore, has its name '%s' back" % (cause, renamed, name),
                         **cause.details), True


def renamed_name(name, when):
    """``<name>_pre_restore_<time>``, whole in a PostgreSQL name (the server would
    cut a longer one, and the result would name no database): a name too long
    for that is cut in bytes at a character and followed by 8 hex digits of its
    sha256, so that two long names with one beginning never get one new name."""
    tail = "_pre_restore_%s" % when.strftime("%Y%m%dT%H%M%SZ")
    raw = name.encode("utf-8")
    if len(raw) + len(tail) <= MAX_NAME_BYTES:
        return name + tail
    digest = "_" + hashlib.sha256(raw).hexdigest()[:8]
    return raw[:MAX_NAME_BYTES - len(tail) - len(digest)].decode("utf-8", "ignore") + digest + tail


def rename_database(admin, name):
    renamed = renamed_name(name, utc_now())
    with admin.cursor() as cur:
        cur.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(name), sql.Identifier(renamed)))
    return renamed


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        src=dict(type="path", required=True),
        manifest=dict(type="path"),
        require_manifest=dict(type="bool", default=True),
        target_db=dict(type="str"),
        owner=dict(type="str"),
        clean=dict(type="bool", default=False),
        safety_backup=dict(type="bool", default=True),
        rename_existing=dict(type="bool", default=False),
        terminate_connections=dict(type="bool", default=False),
        tables=dict(type="list", elements="str", default=[]),
        schemas=dict(type="list", elements="str", default=[]),
        jobs=dict(type="int", default=1),
        row_counts=dict(type="str", choices=["auto", "exact"], default="auto"),
        no_owner=dict(type="bool", default=False),
        decrypt_identity=dict(type="path"),
        lock_timeout=dict(type="int", default=300),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=[("target_db", "clean")],
                           supports_check_mode=True)
    client = PostgresClient(module)
    target = module.params["target_db"] or module.params["db"]
    result = {"changed": False, "target_db": target, "safety_backup": None, "renamed_to": None, "terminated": [],
              "half_made_dropped": False, "timings": Timings()}
    action = "restore of '%s' into database '%s'" % (module.params["src"], target)
    run_main(module, lambda res: restore(module, client, res), result, action, subject=module.params["src"],
             describe=client.explain(action))


if __name__ == "__main__":
    main()
