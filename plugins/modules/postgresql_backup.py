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
  - Replaces a bare C(pg_dump) from cron, which nobody checks restores.
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
series:
  description:
    - The set's series - the key (bot, engine, database), its C(id)
      (C(<bot>/<engine>-<database>)) and the directory C(dir) the set is in.
  returned: success
  type: dict
  sample: {"bot": "reminder-bot", "engine": "postgresql", "database": "botdb",
           "id": "reminder-bot/postgresql-botdb", "dir": "/var/backups/botops/reminder-bot/postgresql-botdb"}
elapsed:
  description: Seconds the backup took, verification included.
  returned: always
  type: float
  sample: 12.9
"""

import fnmatch
import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botops.runbook.plugins.module_utils._backupset import (
    BackupSetWriter,
    backup_module_args,
    resolve_compression,
)
from ansible_collections.botops.runbook.plugins.module_utils._files import BackupError
from ansible_collections.botops.runbook.plugins.module_utils._postgres import (
    PostgresClient,
    connection_argument_spec,
    count_differences,
)
from ansible_collections.botops.runbook.plugins.module_utils._run import run_main

EXTENSIONS = {"custom": ".dump", "directory": ".dir", "plain": ".sql"}


def selection_args(params):
    args = []
    for option, flag in (("tables", "--table"), ("exclude_tables", "--exclude-table"),
                         ("schemas", "--schema"), ("exclude_schemas", "--exclude-schema")):
        args += ["%s=%s" % (flag, value) for value in params[option]]
    return args


# A table's data in pg_restore --list: "<id>; 0 <the table's oid> TABLE DATA <schema>
# <table> <owner>". The names are printed raw (spaces, newlines as spaces): the oid says
# which table it is.
TABLE_DATA = re.compile(r"^\d+; \d+ (\d+) TABLE DATA ", re.MULTILINE)


def tables_in_dump(tables, listing, params, oids):
    """Keep the counts of the tables the dump holds: from its table of contents (by
    the oids, {oid: schema.table}, of the snapshot the counts are from), or (plain
    SQL) by pg_dump's patterns, where * and ? are wildcards."""
    if listing is not None:
        dumped = {oids.get(int(oid)) for oid in TABLE_DATA.findall(listing)}
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


def verify_restore(client, path, fmt, compression, expected):
    """Restore into a scratch database and compare exact row counts."""
    with client.scratch_database("verify") as scratch:
        client.restore(path, fmt, compression, scratch, options=[] if fmt == "plain" else ["--no-owner"],
                       what="verification restore of '%s'" % path)
        actual = client.on_database(scratch, lambda conn: client.row_counts(conn, exact=True), "counting the rows")
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


def back_up(module, client, result):
    params, fmt = module.params, module.params["format"]
    if params["encrypt_to"] and fmt == "directory":
        raise BackupError("encrypt_to needs format=custom or plain: a directory dump is many files")
    if params["jobs"] > 1 and fmt != "directory":
        raise BackupError("jobs=%d needs format=directory: only directory dumps run in parallel" % params["jobs"])
    compression = dump_compression(params)
    client.require("pg_dump", "pg_restore", *(("pg_dumpall",) if params["globals"] else ()))
    conn = client.connect(autocommit=False)
    try:
        dump_version = client.check_client("pg_dump", conn)
        size = client.database_size(conn)
        with BackupSetWriter(module, "postgresql", params["db"], params["db"], EXTENSIONS[fmt],
                             "none" if fmt == "directory" else compression) as backup:
            backup.check_space(size)
            result.update(changed=True, dest=backup.predict(), database_size=size, series=backup.series,
                          server_version=client.server_version(conn), pg_dump_version=dump_version,
                          compression=compression, format=fmt)
            result["manifest"] = backup.manifest_for(result["dest"])
            conn.rollback()
            if module.check_mode:
                return
            with client.backup_lock(conn, params["lock_timeout"]), client:
                result["dest"] = backup.reserve()
                result["manifest"] = backup.manifest_for(backup.final)
                result.update(take_backup(backup, client, conn, compression, result))
    finally:
        conn.close()


def main():
    argument_spec = connection_argument_spec()
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
    module = AnsibleModule(**backup_module_args(argument_spec))
    client = PostgresClient(module)
    result = {"changed": False}
    action = "backup of %s" % client.describe()
    run_main(module, lambda res: back_up(module, client, res), result, action,
             subject=module.params["dest"] or module.params["dest_dir"], describe=client.explain(action))


def dump(backup, client, conn, compression):
    """pg_dump from one exported snapshot and the row counts of that snapshot:
    (temporary file or directory, its size and sha256 or None, the dump's size
    before compression or None, tables, their oids, exact, argv)."""
    params = client.params
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_export_snapshot()")
        snapshot = cur.fetchone()[0]
    exact = params["row_counts"] == "exact" or params["verify"] == "restore"
    tables = client.row_counts(conn, exact=exact)
    oids = client.table_oids(conn)
    argv = [client.binary("pg_dump"), "--format=%s" % params["format"], "--snapshot=%s" % snapshot]
    argv += selection_args(params)
    what = "pg_dump of %s" % client.describe()
    if params["format"] == "directory":
        out, size, checksum, plain = backup.temp_dir(), None, None, None  # pg_dump creates the directory itself
        level = 0 if compression == "none" else params["compression_level"] or 6
        client.run(argv + ["--jobs=%d" % params["jobs"], "--compress=%d" % level, "--file=%s" % out], what,
                   db=params["db"])
    else:
        if params["format"] == "custom":
            argv.append("--compress=0")  # compressed on the way to disk instead
        out = backup.temp()
        size, checksum, plain = client.dump_to(argv, out, compression, params["compression_level"], what,
                                               db=params["db"])
    conn.rollback()  # the snapshot was needed only while pg_dump started and read
    return out, size, checksum, plain, tables, oids, exact, argv


def add_globals(backup, client, compression):
    """Roles and tablespaces (pg_dumpall --globals-only) as a file of the set."""
    final = backup.beside(".globals.sql", compression)
    temp = backup.temp(final)
    size, checksum, dummy = client.dump_to([client.binary("pg_dumpall"), "--globals-only"], temp, compression,
                                           client.params["compression_level"], "pg_dumpall --globals-only")
    temp, sealed = backup.seal(temp, final, size, checksum)
    backup.add(temp, final, **({} if sealed else {"size": size, "sha256": checksum}))


def take_backup(backup, client, conn, compression, facts):
    """Snapshot, dump, verify, seal, publish, manifest. Nothing partial survives."""
    params, fmt = client.params, client.params["format"]
    out, size, checksum, plain, tables, oids, exact, argv = dump(backup, client, conn, compression)
    tables = tables_in_dump(tables, client.read_dump(out, fmt, compression), params, oids)
    if params["verify"] == "restore":
        verify_restore(client, out, fmt, compression, tables)
    out, encryption = backup.seal(out, plain_size=size, plain_sha256=checksum)
    entry = backup.add(out, **({} if encryption or size is None else {"size": size, "sha256": checksum}))
    if params["globals"]:
        add_globals(backup, client, "none" if fmt == "directory" else compression)
    files = backup.commit(
        compression=compression, encryption=encryption, uncompressed_size=plain, tables=tables,
        row_counts="exact" if exact else "estimate",
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
