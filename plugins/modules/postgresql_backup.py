#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: postgresql_backup
short_description: Verified, atomic pg_dump of a PostgreSQL database into a backup set with a manifest
version_added: 0.1.0
description:
  - Dumps one database with C(pg_dump) in C(custom) (default), C(directory) or C(plain)
    format and keeps it only after it is verified - C(pg_restore --list) succeeds, or
    with O(verify=restore) the dump is restored into a scratch database whose row
    counts must equal the manifest's.
  - C(pg_dump) 15 has no zstd of its own, so the dump is taken uncompressed and the
    stream compressed with zstd (or gzip) on the way to disk. Directory format uses
    C(pg_dump)'s own gzip, or none.
  - The row counts and the dump come from one exported snapshot, so the manifest's
    counts are exactly what the dump holds, even while the bot writes.
  - Writes a manifest beside the backup in the format the SQLite modules use, with
    server and pg_dump versions, database size, format, row counts per table and the
    sha256 of every file.
  - Replaces the runbooks' C(pg_dump) from cron, which nobody checks restores.
author:
  - botops.runbook developers (@botops)
extends_documentation_fragment:
  - ansible.builtin.files
  - botops.runbook.postgres
  - botops.runbook.backup_destination
attributes:
  check_mode:
    support: full
    description:
      - Connects, finds C(pg_dump), compares client and server versions and checks the
        destination's free space against C(pg_database_size); predicts C(changed=true)
        and writes nothing.
  diff_mode:
    support: none
    description: A backup creates a new file; there is nothing to diff.
options:
  format:
    description: The C(pg_dump) format.
    type: str
    choices: [custom, directory, plain]
    default: custom
  jobs:
    description: Parallel dump jobs (C(directory) format only).
    type: int
    default: 1
  compression:
    description:
      - C(auto) is C(zstd) where the host has the Python C(zstandard) package, C(gzip)
        otherwise; for the C(directory) format C(auto) and C(gzip) use C(pg_dump)'s own
        gzip per file, and C(zstd) is refused.
    type: str
    choices: [auto, none, gzip, zstd]
    default: auto
  globals:
    description:
      - Also dump roles and tablespaces (C(pg_dumpall --globals-only)) into the same
        backup set, as C(<name>.globals.sql).
    type: bool
    default: false
  tables:
    description: Only these tables (C(pg_dump --table)).
    type: list
    elements: str
    default: []
  exclude_tables:
    description: Leave these tables out (C(pg_dump --exclude-table)).
    type: list
    elements: str
    default: []
  schemas:
    description: Only these schemas (C(pg_dump --schema)).
    type: list
    elements: str
    default: []
  exclude_schemas:
    description: Leave these schemas out (C(pg_dump --exclude-schema)).
    type: list
    elements: str
    default: []
  row_counts:
    description:
      - C(estimate) records the planner's row estimates (instant); C(exact) counts every
        table inside the dump's snapshot. O(verify=restore) always counts exactly.
    type: str
    choices: [estimate, exact]
    default: estimate
  encrypt_to:
    description:
      - Encrypt the dump (and the globals) with C(age) to these recipients (public keys,
        C(age1...)); files get C(.age) appended. Not for the C(directory) format. The
        manifest records the recipients and the plaintext checksum.
    type: list
    elements: str
    default: []
  verify:
    description:
      - C(list) runs C(pg_restore --list) on the dump (for C(plain), checks that the SQL
        ends with the completion marker).
      - C(restore) also restores into a scratch database, compares per-table row counts
        with the manifest, and drops the scratch database. Needs C(CREATEDB).
    type: str
    choices: [list, restore]
    default: list
notes:
  - The password reaches C(pg_dump) through a private passfile, never its command line.
  - C(pg_dump) older than the server is refused before anything is written.
seealso:
  - module: botops.runbook.sqlite_backup
"""

EXAMPLES = r"""
- name: Nightly verified dump of the clip-saver database
  botops.runbook.postgresql_backup:
    db: clips
    login_user: backup
    login_password: "{{ vault_backup_password }}"
    dest_dir: /var/backups/botops/clip-saver/postgresql-clips
    bot: clip-saver

- name: Weekly dump with roles, restored into a scratch database to prove it
  botops.runbook.postgresql_backup:
    db: psychochauffeur
    dest_dir: /var/backups/botops/psychochauffeur/postgresql-psychochauffeur
    globals: true
    verify: restore
"""

RETURN = r"""
dest:
  description: Path of the backup (a file, or a directory for the C(directory) format).
  returned: always
  type: str
  sample: /var/backups/botops/clip-saver/postgresql-clips/clips_20261122T031500Z.dump.zst
manifest:
  description: Path of the manifest.
  returned: always
  type: str
  sample: /var/backups/botops/clip-saver/postgresql-clips/clips_20261122T031500Z.dump.zst.manifest.json
files:
  description: Every file of the set with its size and sha256.
  returned: success, not in check mode
  type: list
  elements: dict
  sample: [{"name": "clips_20261122T031500Z.dump.zst", "size": 1048576, "sha256": "9f86d0..."}]
size:
  description: Total bytes written.
  returned: success, not in check mode
  type: int
  sample: 1048576
checksum:
  description: sha256 of the main dump file (null for the directory format).
  returned: success, not in check mode
  type: str
  sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
tables:
  description: Row counts per table in the dump's snapshot (estimates unless exact).
  returned: success, not in check mode
  type: dict
  sample: {"public.messages": 5400, "public.users": 120}
database_size:
  description: C(pg_database_size) of the database.
  returned: always
  type: int
  sample: 25165824
server_version:
  description: Version of the server.
  returned: always
  type: str
  sample: "15.18"
pg_dump_version:
  description: Version of the C(pg_dump) used.
  returned: always
  type: str
  sample: "15.18"
verified:
  description: How the dump was verified.
  returned: success, not in check mode
  type: dict
  sample: {"method": "list", "ok": true}
cmd:
  description: The C(pg_dump) command (no password is ever on it).
  returned: success, not in check mode
  type: list
  elements: str
  sample: ["pg_dump", "--format=custom", "--compress=0", "--snapshot=00000003-0000001B-1", "clips"]
elapsed:
  description: Seconds the backup took, verification included.
  returned: always
  type: float
  sample: 12.9
"""

import fnmatch
import os
import re
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botops.runbook.plugins.module_utils._backupset import (
    DESTINATION_RULES,
    BackupSetWriter,
    backup_destination_argument_spec,
    resolve_compression,
)
from ansible_collections.botops.runbook.plugins.module_utils._files import BackupError, describe_os_error
from ansible_collections.botops.runbook.plugins.module_utils._streams import decompress_to
from ansible_collections.botops.runbook.plugins.module_utils._postgres import (
    LibpqEnvironment,
    PostgresError,
    check_client_not_older,
    connect,
    count_differences,
    connection_argument_spec,
    database_size,
    describe_target,
    find_binary,
    pipe_into,
    require_psycopg2,
    restore_dump,
    run_checked,
    server_version_string,
    sql,
    stream_dump,
    table_row_counts,
)

EXTENSIONS = {"custom": ".dump", "directory": ".dir", "plain": ".sql"}
PLAIN_DONE = b"-- PostgreSQL database dump complete"


def selection_args(params):
    args = []
    for option, flag in (("tables", "--table"), ("exclude_tables", "--exclude-table"),
                         ("schemas", "--schema"), ("exclude_schemas", "--exclude-schema")):
        args += ["%s=%s" % (flag, value) for value in params[option]]
    return args


def verify_list(pg_restore, env, path, fmt, compression):
    """pg_restore --list reads the whole table of contents (returned), or the SQL
    ends as a complete dump does (None)."""
    what = "pg_restore --list of '%s'" % path
    if fmt == "directory":
        return run_checked([pg_restore, "--list", path], env, what).decode("utf-8", "replace")
    if fmt == "custom":
        return pipe_into([pg_restore, "--list"], env, path, compression, what)
    with tempfile.TemporaryFile() as plain:
        decompress_to(path, compression, plain)
        plain.seek(max(0, plain.tell() - 4096))
        if PLAIN_DONE not in plain.read():
            raise BackupError("dump '%s' does not end with pg_dump's completion marker: it is truncated" % path)
    return None


TABLE_DATA = re.compile(r"^\d+; \d+ \d+ TABLE DATA (\S+) (\S+) ", re.MULTILINE)


def tables_in_dump(tables, listing, params):
    """Keep the counts of the tables the dump holds: from its table of contents, or
    (plain SQL) by pg_dump's patterns, where * and ? are wildcards."""
    if listing is not None:
        dumped = {"%s.%s" % match for match in TABLE_DATA.findall(listing)}
        return {name: rows for name, rows in tables.items() if name in dumped}

    def matches(name, patterns):
        return any(fnmatch.fnmatchcase(name if "." in pattern else name.split(".", 1)[1], pattern)
                   for pattern in patterns)

    def schema_matches(name, patterns):
        return any(fnmatch.fnmatchcase(name.split(".", 1)[0], pattern) for pattern in patterns)

    kept = {}
    for name, rows in tables.items():
        if params["tables"] and not matches(name, params["tables"]):
            continue
        if params["schemas"] and not schema_matches(name, params["schemas"]):
            continue
        if matches(name, params["exclude_tables"]) or schema_matches(name, params["exclude_schemas"]):
            continue
        kept[name] = rows
    return kept


def verify_restore(module, params, env, path, fmt, compression, expected):
    """Restore into a scratch database and compare exact row counts."""
    scratch = "botops_verify_%s_%s" % (params["db"][:30], os.urandom(4).hex())
    admin = connect(params, db="postgres")
    try:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
        try:
            restore_dump(module, env, path, fmt, compression, scratch,
                         options=[] if fmt == "plain" else ["--no-owner"], what="verification restore of '%s'" % path)
            conn = connect(params, db=scratch)
            try:
                actual = table_row_counts(conn, exact=True)
            finally:
                conn.close()
        finally:
            with admin.cursor() as cur:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
    finally:
        admin.close()
    differ = count_differences(expected, actual)
    if differ:
        raise BackupError("dump '%s' restored with other row counts than its snapshot: %s" % (path, differ))


def dump_compression(params):
    """The compression of the dump: pg_dump's own gzip for a directory dump."""
    compression = params["compression"]
    if params["format"] == "directory":
        if compression == "zstd":
            raise BackupError("format=directory cannot use zstd: pg_dump 15 compresses directory dumps with gzip "
                              "only; use compression=gzip (or auto), or format=custom for zstd")
        return "none" if compression == "none" else "gzip"
    return resolve_compression(compression)


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(backup_destination_argument_spec())
    argument_spec.update(
        format=dict(type="str", choices=["custom", "directory", "plain"], default="custom"),
        jobs=dict(type="int", default=1),
        globals=dict(type="bool", default=False),
        tables=dict(type="list", elements="str", default=[]),
        exclude_tables=dict(type="list", elements="str", default=[]),
        schemas=dict(type="list", elements="str", default=[]),
        exclude_schemas=dict(type="list", elements="str", default=[]),
        row_counts=dict(type="str", choices=["estimate", "exact"], default="estimate"),
        verify=dict(type="str", choices=["list", "restore"], default="list"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, **DESTINATION_RULES)
    require_psycopg2(module)
    params = module.params
    started = time.monotonic()
    fmt = params["format"]
    conn = None
    result = {"changed": False}
    try:
        if params["encrypt_to"] and fmt == "directory":
            raise BackupError("encrypt_to needs format=custom or plain: a directory dump is many files")
        if params["jobs"] > 1 and fmt != "directory":
            raise BackupError("jobs=%d needs format=directory: only directory dumps run in parallel" % params["jobs"])
        compression = dump_compression(params)
        for tool in ("pg_dump", "pg_restore") + (("pg_dumpall",) if params["globals"] else ()):
            find_binary(module, tool)  # every client program is there before anything starts
        conn = connect(params, autocommit=False)
        dump_version = check_client_not_older(module, find_binary(module, "pg_dump"), conn)
        size = database_size(conn, params["db"])
        with BackupSetWriter(module, "postgresql", params["db"], params["db"], EXTENSIONS[fmt],
                             "none" if fmt == "directory" else compression) as backup:
            backup.check_space(size)
            result.update(changed=True, dest=backup.predict(), database_size=size,
                          server_version=server_version_string(conn), pg_dump_version=dump_version,
                          compression=compression, format=fmt)
            result["manifest"] = backup.manifest_for(result["dest"])
            conn.rollback()
            if module.check_mode:
                result["elapsed"] = round(time.monotonic() - started, 3)
                module.exit_json(**result)

            key = "postgresql://%s:%d/%s" % (params["login_unix_socket"] or params["login_host"],
                                             params["login_port"], params["db"])
            with backup.lock(key), LibpqEnvironment(params) as env:
                result["dest"] = backup.reserve()
                result["manifest"] = backup.manifest_for(backup.final)
                result.update(take_backup(backup, module, conn, env, compression, result))
    except (PostgresError, BackupError) as exc:
        module.fail_json(msg=str(exc), **result)
    except OSError as exc:
        module.fail_json(msg=describe_os_error(exc, "backup of %s" % describe_target(params),
                                               exc.filename or result.get("dest", "")), **result)
    finally:
        if conn is not None:
            conn.close()
    result["elapsed"] = round(time.monotonic() - started, 3)
    module.exit_json(**result)


def dump(backup, module, conn, env, compression):
    """pg_dump from one exported snapshot and the row counts of that snapshot:
    (temporary file or directory, its size and sha256 or None, tables, exact, argv)."""
    params = module.params
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_export_snapshot()")
        snapshot = cur.fetchone()[0]
    exact = params["row_counts"] == "exact" or params["verify"] == "restore"
    tables = table_row_counts(conn, exact=exact)
    argv = [find_binary(module, "pg_dump"), "--format=%s" % params["format"], "--snapshot=%s" % snapshot]
    argv += selection_args(params)
    dump_env, what = dict(env, PGDATABASE=params["db"]), "pg_dump of %s" % describe_target(params)
    if params["format"] == "directory":
        out, size, checksum = backup.temp_dir(), None, None  # pg_dump creates the directory itself
        level = 0 if compression == "none" else params["compression_level"] or 6
        run_checked(argv + ["--jobs=%d" % params["jobs"], "--compress=%d" % level, "--file=%s" % out], dump_env, what)
    else:
        if params["format"] == "custom":
            argv.append("--compress=0")  # compressed on the way to disk instead
        out = backup.temp()
        size, checksum = stream_dump(argv, dump_env, out, compression, params["compression_level"], what)
    conn.rollback()  # the snapshot was needed only while pg_dump started and read
    return out, size, checksum, tables, exact, argv


def add_globals(backup, module, env, compression):
    """Roles and tablespaces (pg_dumpall --globals-only) as a file of the set."""
    final = backup.beside(".globals.sql", compression)
    temp = backup.temp(final)
    size, checksum = stream_dump([find_binary(module, "pg_dumpall"), "--globals-only"], env, temp, compression,
                                 module.params["compression_level"], "pg_dumpall --globals-only")
    temp, sealed = backup.seal(temp, final, size, checksum)
    backup.add(temp, final, **({} if sealed else {"size": size, "sha256": checksum}))


def take_backup(backup, module, conn, env, compression, facts):
    """Snapshot, dump, verify, seal, publish, manifest. Nothing partial survives."""
    params, fmt = module.params, module.params["format"]
    out, size, checksum, tables, exact, argv = dump(backup, module, conn, env, compression)
    listing = verify_list(find_binary(module, "pg_restore"), env, out, fmt, compression)
    tables = tables_in_dump(tables, listing, params)
    if params["verify"] == "restore":
        verify_restore(module, params, env, out, fmt, compression, tables)
    out, encryption = backup.seal(out, plain_size=size, plain_sha256=checksum)
    entry = backup.add(out, **({} if encryption or size is None else {"size": size, "sha256": checksum}))
    if params["globals"]:
        add_globals(backup, module, env, "none" if fmt == "directory" else compression)
    files = backup.commit(
        compression=compression, encryption=encryption, tables=tables, row_counts="exact" if exact else "estimate",
        verified={"method": "restore" if params["verify"] == "restore" else "pg_restore --list"
                  if fmt != "plain" else "completion marker", "ok": True},
        source={"format": fmt, "server_version": facts["server_version"], "pg_dump_version": facts["pg_dump_version"],
                "database_size": facts["database_size"], "port": params["login_port"],
                "host": params["login_host"] or params["login_unix_socket"] or "local",
                "selection": {k: params[k] for k in ("tables", "exclude_tables", "schemas", "exclude_schemas")}})
    return {"files": files, "size": sum(f["size"] for f in files), "checksum": entry["sha256"] if entry else None,
            "tables": tables, "verified": {"method": params["verify"], "ok": True},
            "cmd": [os.path.basename(argv[0])] + argv[1:]}


if __name__ == "__main__":
    main()
