# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""postgresql_restore against the harness's real PostgreSQL server."""

import json
import os

import psycopg2
import pytest
from dbtools import pg_query

from ansible_collections.botops.runbook.plugins.modules import postgresql_backup, postgresql_restore


def databases(info):
    return {name for (name,) in pg_query(info, "postgres", "SELECT datname FROM pg_database")}


@pytest.fixture
def admin_params(pg_botdb):
    return {"login_host": pg_botdb["host"], "login_port": pg_botdb["port"], "login_user": "postgres",
            "login_password": pg_botdb["superuser_password"], "db": pg_botdb["app_db"]}


@pytest.fixture
def backup(run_module, admin_params, tmp_path):
    directory = tmp_path / "backups"
    directory.mkdir()
    result = run_module(postgresql_backup, dict(admin_params, dest_dir=str(directory), row_counts="exact"))
    assert not result["failed"], result.get("msg")
    return result


@pytest.fixture
def drop_after(pg_botdb):
    names = []
    yield names
    for name in names:
        pg_query(pg_botdb, "postgres", 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def test_into_a_new_database_check_then_real_then_again(run_module, admin_params, pg_botdb, backup, drop_after):
    drop_after.append("restored_new")
    args = dict(admin_params, src=backup["dest"], target_db="restored_new")
    checked = run_module(postgresql_restore, args, check_mode=True)
    assert not checked["failed"], checked.get("msg")
    assert checked["changed"] is True and "restored_new" not in databases(pg_botdb)

    real = run_module(postgresql_restore, args)
    assert not real["failed"], real.get("msg")
    assert real["changed"] is True
    assert real["tables"] == real["manifest_tables"] == backup["tables"]

    again = run_module(postgresql_restore, args)
    assert not again["failed"], again.get("msg")
    assert again["changed"] is False


def schema_objects(info, db):
    """Names of the indexes and constraints of a database's public schema."""
    indexes = pg_query(info, db, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")
    constraints = pg_query(info, db, "SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
                                     "ORDER BY 1")
    return [r[0] for r in indexes], [r[0] for r in constraints]


def test_partial_and_parallel_restores(run_module, admin_params, pg_botdb, backup, drop_after, tmp_path):
    drop_after += ["only_users", "parallel"]
    partial = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], target_db="only_users",
                                                  tables=["users"]))
    assert not partial["failed"], partial.get("msg")
    assert list(partial["tables"]) == ["public.users"] and partial["tables"]["public.users"] == 300

    parallel = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], target_db="parallel", jobs=2))
    assert not parallel["failed"], parallel.get("msg")
    assert parallel["tables"] == backup["tables"]
    # Rows stream in one job, indexes and constraints follow in parallel: all of them arrive.
    assert schema_objects(pg_botdb, "parallel") == schema_objects(pg_botdb, "botdb")


def test_a_parallel_restore_over_an_existing_database(run_module, admin_params, pg_botdb, backup, drop_after):
    drop_after.append("live_parallel")
    run_module(postgresql_restore, dict(admin_params, src=backup["dest"], target_db="live_parallel"))
    pg_query(pg_botdb, "live_parallel", "DELETE FROM messages WHERE id > 100")
    result = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], db="live_parallel", clean=True,
                                                 jobs=2))
    assert not result["failed"], result.get("msg")
    assert result["tables"] == backup["tables"]
    assert schema_objects(pg_botdb, "live_parallel") == schema_objects(pg_botdb, "botdb")


def test_directory_dump_in_parallel(run_module, admin_params, tmp_path, drop_after):
    drop_after.append("from_directory")
    dump = run_module(postgresql_backup, dict(admin_params, dest_dir=str(tmp_path), format="directory", jobs=2,
                                              row_counts="exact"))
    assert not dump["failed"], dump.get("msg")
    result = run_module(postgresql_restore, dict(admin_params, src=dump["dest"], target_db="from_directory", jobs=2))
    assert not result["failed"], result.get("msg")
    assert result["tables"] == dump["tables"]


def test_over_an_existing_database_with_a_safety_backup(run_module, admin_params, pg_botdb, backup, drop_after):
    drop_after.append("live_bot")
    run_module(postgresql_restore, dict(admin_params, src=backup["dest"], target_db="live_bot"))
    pg_query(pg_botdb, "live_bot", "DELETE FROM messages WHERE id > 100")

    refused = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], db="live_bot"))
    assert refused["failed"] and "without clean=true" in refused["msg"]

    result = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], db="live_bot", clean=True))
    assert not result["failed"], result.get("msg")
    assert result["tables"]["public.messages"] == 5000
    assert result["safety_backup"] and os.path.exists(result["safety_backup"])
    assert oct(os.stat(result["safety_backup"]).st_mode & 0o777) == "0o600"


def test_busy_database_is_refused_then_freed(run_module, admin_params, pg_botdb, backup, drop_after):
    drop_after.append("busy_bot")
    run_module(postgresql_restore, dict(admin_params, src=backup["dest"], target_db="busy_bot"))
    holder = psycopg2.connect(host=pg_botdb["host"], port=pg_botdb["port"], dbname="busy_bot", user="postgres",
                              password=pg_botdb["superuser_password"], application_name="clip-saver-bot")
    try:
        refused = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], db="busy_bot", clean=True,
                                                      rename_existing=True))
        assert refused["failed"] and "clip-saver-bot" in refused["msg"] and "terminate_connections" in refused["msg"]
        freed = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], db="busy_bot", clean=True,
                                                    rename_existing=True, terminate_connections=True))
        assert not freed["failed"], freed.get("msg")
        assert [s["application_name"] for s in freed["terminated"]] == ["clip-saver-bot"]
        drop_after.append(freed["renamed_to"])
        assert freed["renamed_to"] in databases(pg_botdb)
    finally:
        holder.close()


# --- bad input: a clear error, and nothing changed ---------------------------

def test_corrupted_dump_is_refused(run_module, admin_params, pg_botdb, backup):
    with open(backup["dest"], "r+b") as handle:
        handle.seek(os.path.getsize(backup["dest"]) // 2)
        handle.write(b"corruption")
    result = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], target_db="never_made"))
    assert result["failed"] and "does not match its manifest's sha256" in result["msg"]
    assert "never_made" not in databases(pg_botdb)


def rewrite_manifest_sha256(backup, value="0" * 64):
    """A sound dump whose manifest vouches for other bytes: only the checksum can tell."""
    import json  # pylint: disable=import-outside-toplevel
    with open(backup["manifest"]) as handle:
        manifest = json.load(handle)
    manifest["files"][0]["sha256"] = value
    with open(backup["manifest"], "w") as handle:
        json.dump(manifest, handle)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_dump_its_manifest_does_not_vouch_for_runs_no_sql(run_module, admin_params, pg_botdb, backup, jobs):
    """A dump's table of contents is SQL run as the login role: a sound-looking file
    whose sha256 differs from its manifest's is refused before pg_restore starts."""
    rewrite_manifest_sha256(backup)
    result = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], target_db="not_vouched",
                                                 jobs=jobs))
    assert result["failed"] and "does not match its manifest's sha256" in result["msg"]
    assert "not_vouched" not in databases(pg_botdb)
    assert set(result["timings"]) == {"verify"}  # nothing after the checksum ran


def test_over_an_existing_database_the_checksum_comes_first(run_module, admin_params, pg_botdb, backup):
    """Over an existing database nothing may start before the whole file is proven."""
    rewrite_manifest_sha256(backup)
    before = pg_query(pg_botdb, "botdb", "SELECT count(*) FROM messages")
    result = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], clean=True))
    assert result["failed"] and "does not match its manifest's sha256" in result["msg"]
    assert "dropped" not in result["msg"] and not result["safety_backup"]
    assert set(result["timings"]) == {"verify"}
    assert pg_query(pg_botdb, "botdb", "SELECT count(*) FROM messages") == before


def test_a_failed_clean_restore_leaves_no_marker_behind(run_module, admin_params, pg_botdb, backup, drop_after):
    """Restored once from a backup (marked), then a clean restore over it fails: a
    re-run of the first restore must not take the database for done."""
    drop_after.append("marked_bot")
    args = dict(admin_params, src=backup["dest"], target_db="marked_bot")
    assert not run_module(postgresql_restore, args)["failed"]
    # A view the dump does not know depends on a table --clean must drop: pg_restore fails.
    pg_query(pg_botdb, "marked_bot", "CREATE VIEW blocks_the_clean AS SELECT count(*) FROM messages")
    failed = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], db="marked_bot", clean=True,
                                                 safety_backup=False))
    assert failed["failed"] and "other objects depend on it" in failed["msg"], failed.get("msg")
    again = run_module(postgresql_restore, args)
    assert again["failed"] and "was not restored from this backup" in again["msg"]


def test_check_mode_reads_the_whole_checksum(run_module, admin_params, pg_botdb, backup):
    rewrite_manifest_sha256(backup)
    result = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], target_db="predicted"),
                        check_mode=True)
    assert result["failed"] and "does not match its manifest's sha256" in result["msg"]
    assert "predicted" not in databases(pg_botdb)


def test_truncated_dump_is_refused(run_module, admin_params, pg_botdb, backup):
    with open(backup["dest"], "r+b") as handle:
        handle.truncate(os.path.getsize(backup["dest"]) // 3)
    result = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], target_db="never_made",
                                                 require_manifest=False, manifest="/nonexistent"))
    # The dump is zstd (the test venv has zstandard): the cut shows while it is decompressed.
    assert backup["compression"] == "zstd"
    assert result["failed"]
    assert result["msg"] == ("cannot decompress '%s' (zstd): the zstd frame ends early; the file is damaged or truncated"
                             % backup["dest"])
    assert "never_made" not in databases(pg_botdb)


def test_existing_target_that_is_not_ours_is_refused(run_module, admin_params, backup):
    result = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], target_db="botdb"))
    assert result["failed"] and "already exists" in result["msg"]


def test_wrong_password(run_module, admin_params, backup):
    result = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], target_db="x",
                                                 login_password="nope"))
    assert result["failed"] and "password authentication failed" in result["msg"]


def test_encrypted_dump_round_trip_and_wrong_key(run_module, admin_params, pg_botdb, tmp_path, drop_after):
    import shutil  # pylint: disable=import-outside-toplevel
    import subprocess  # pylint: disable=import-outside-toplevel
    if not shutil.which("age-keygen"):
        pytest.skip("age is installed by scripts/setup.sh")
    key, other = tmp_path / "key.txt", tmp_path / "other.txt"
    for path in (key, other):
        subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True).stdout.strip()
    dump = run_module(postgresql_backup, dict(admin_params, dest_dir=str(tmp_path), encrypt_to=[recipient],
                                              globals=True, row_counts="exact"))
    assert not dump["failed"], dump.get("msg")
    assert dump["dest"].endswith(".dump.zst.age") and all(f["name"].endswith(".age") for f in dump["files"])

    wrong = run_module(postgresql_restore, dict(admin_params, src=dump["dest"], target_db="from_encrypted",
                                                decrypt_identity=str(other)))
    assert wrong["failed"] and "not the private key of any recipient" in wrong["msg"]
    assert "from_encrypted" not in databases(pg_botdb)

    drop_after.append("from_encrypted")
    restored = run_module(postgresql_restore, dict(admin_params, src=dump["dest"], target_db="from_encrypted",
                                                   decrypt_identity=str(key)))
    assert not restored["failed"], restored.get("msg")
    assert restored["tables"] == dump["tables"]


def test_counts_are_exact_when_compared_or_asked_for(run_module, admin_params, pg_botdb, tmp_path, drop_after):
    """A dump with estimated counts restores with ANALYZE's estimates (no scan of the
    data); row_counts=exact counts every row; an exact manifest is counted and compared."""
    directory = tmp_path / "estimated"
    directory.mkdir()
    dump = run_module(postgresql_backup, dict(admin_params, dest_dir=str(directory)))
    assert not dump["failed"], dump.get("msg")
    exact = {"public.%s" % table: pg_query(pg_botdb, "botdb", "SELECT count(*) FROM %s" % table)[0][0]
             for table in ("users", "messages")}
    drop_after.extend(["estimated_db", "counted_db"])
    estimated = run_module(postgresql_restore, dict(admin_params, src=dump["dest"], target_db="estimated_db"))
    assert not estimated["failed"], estimated.get("msg")
    assert estimated["row_counts"] == "estimate" and set(estimated["tables"]) == set(dump["tables"])
    counted = run_module(postgresql_restore, dict(admin_params, src=dump["dest"], target_db="counted_db",
                                                  row_counts="exact"))
    assert counted["row_counts"] == "exact"
    assert {name: counted["tables"][name] for name in exact} == exact


@pytest.mark.parametrize("tables, spread", [
    ({"public.messages": 950, "public.users": 50}, False),
    ({"a": 250, "b": 250, "c": 250, "d": 250}, True),
    ({"a": 500, "b": 500}, True),
    ({}, True),
    (None, True),
])
def test_rows_load_in_parallel_only_when_no_table_holds_most_of_them(tables, spread):
    assert postgresql_restore.rows_spread_out({"tables": tables} if tables is not None else None) is spread


def test_a_failing_pg_tool_reports_its_rc_stderr_and_command(run_module, admin_params, pg_botdb, tmp_path):
    """A file that is no dump: pg_restore's own words, its exit status and its
    command line (no password in it) come back, and nothing is created."""
    fake = tmp_path / "not_a_dump.dump"
    fake.write_bytes(b"cp bot.db backup/ # not a dump\n" * 100)
    result = run_module(postgresql_restore, dict(admin_params, src=str(fake), target_db="never_made_either",
                                                 require_manifest=False))
    assert result["failed"]
    assert result["msg"].startswith("reading dump '%s' failed (rc=1): pg_restore: error:" % fake)
    assert result["rc"] == 1 and "pg_restore: error:" in result["stderr"]
    assert result["cmd"].endswith("pg_restore --file=/dev/null")
    assert admin_params.get("login_password", "") == "" or admin_params["login_password"] not in result["cmd"]
    assert "never_made_either" not in databases(pg_botdb)
    assert not [n for n in os.listdir(str(tmp_path)) if n.startswith(".botops-restore-")]


def test_an_owner_that_does_not_exist_is_refused_before_the_rename(run_module, admin_params, pg_botdb, backup):
    run_module(postgresql_restore, dict(admin_params, src=backup["dest"], target_db="owned_live"))
    result = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], db="owned_live", clean=True,
                                                 rename_existing=True, owner="no_such_role"))
    assert result["failed"]
    assert result["msg"] == ("role 'no_such_role' does not exist, so it cannot own the restored database; create it "
                             "first or give another owner")
    assert result["renamed_to"] is None
    assert "owned_live" in databases(pg_botdb)
    assert not [d for d in databases(pg_botdb) if d.startswith("owned_live_pre_restore_")]


def test_staging_never_touches_the_backup_directory(run_module, admin_params, pg_botdb, backup):
    """Decompressed copies of a parallel restore live in the module's own temporary
    directory: the backup tree (possibly a read-only mount) is only read."""
    directory = os.path.dirname(backup["dest"])
    before = sorted(os.listdir(directory))
    result = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], target_db="staged_elsewhere",
                                                 jobs=2))
    assert not result["failed"], result.get("msg")
    assert sorted(os.listdir(directory)) == before


@pytest.mark.parametrize("change", ["renamed", "extra_file", "file_gone"])
def test_a_directory_dump_that_is_not_its_manifests_is_refused(run_module, admin_params, pg_botdb, tmp_path, change):
    """A directory dump under another name than its manifest's (so no file would
    be checked), or with a file more or less than listed: refused before a restore."""
    dump = run_module(postgresql_backup, dict(admin_params, dest_dir=str(tmp_path), format="directory",
                                              row_counts="exact"))
    src = dump["dest"]
    manifest = dump["manifest"]
    if change == "renamed":
        os.rename(src, src + ".moved")
        src += ".moved"
    elif change == "extra_file":
        with open(os.path.join(src, "9999.dat.gz"), "wb") as handle:
            handle.write(b"edited rows")
    else:
        os.unlink(os.path.join(src, sorted(n for n in os.listdir(src) if n.endswith(".dat.gz"))[0]))
    result = run_module(postgresql_restore, dict(admin_params, src=src, manifest=manifest, target_db="never_dir"))
    assert result["failed"]
    assert result["msg"].startswith("directory dump '%s' does not match its manifest (" % src)
    assert {"renamed": "the manifest lists no file of", "extra_file": "not listed: 9999.dat.gz",
            "file_gone": "missing: "}[change] in result["msg"]
    assert "never_dir" not in databases(pg_botdb)


@pytest.mark.parametrize("live", ["put_back_live", "Put Back-Live"])
def test_a_failed_rename_existing_restore_puts_the_database_back(run_module, admin_params, pg_botdb, backup,
                                                                 drop_after, live):
    """rename_existing moves the live database aside; when the restore then fails
    (here: its row counts disagree with the manifest), the half-made one is dropped
    and the live one gets its name back, data intact, and the message says so."""
    drop_after.append(live)
    run_module(postgresql_restore, dict(admin_params, src=backup["dest"], target_db=live))
    pg_query(pg_botdb, live, "DELETE FROM messages WHERE id > 100")
    manifest = json.loads(open(backup["manifest"]).read())
    manifest["tables"]["public.messages"] += 1  # the manifest is not signed: the check after loading catches it
    with open(backup["manifest"], "w") as handle:
        json.dump(manifest, handle)
    result = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], db=live, clean=True,
                                                 rename_existing=True))
    assert result["failed"]
    assert "row counts differ from the manifest's" in result["msg"]
    assert "nothing changed: the half-made restore was dropped and the previous database" in result["msg"]
    assert result["renamed_to"] is None
    assert live in databases(pg_botdb)
    assert not [d for d in databases(pg_botdb) if d.startswith(live[:40] + "_pre_restore_")]
    assert pg_query(pg_botdb, live, "SELECT count(*) FROM messages") == [(100,)]


def rewrite_plain(backup, edit):
    """Edit a plain (compressed) dump and make its manifest vouch for it again, as
    someone who can write the backup tree could."""
    import hashlib  # pylint: disable=import-outside-toplevel
    import zstandard  # pylint: disable=import-outside-toplevel
    with open(backup["dest"], "rb") as handle:
        sql = zstandard.ZstdDecompressor().stream_reader(handle).read()
    data = zstandard.ZstdCompressor().compress(edit(sql))
    with open(backup["dest"], "wb") as handle:
        handle.write(data)
    manifest = json.loads(open(backup["manifest"]).read())
    manifest["files"][0].update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    with open(backup["manifest"], "w") as handle:
        json.dump(manifest, handle)


@pytest.fixture
def plain_backup(run_module, admin_params, tmp_path):
    result = run_module(postgresql_backup, dict(admin_params, dest_dir=str(tmp_path), format="plain",
                                                compression="zstd", row_counts="exact"))
    assert not result["failed"], result.get("msg")
    return result


def test_a_plain_dump_restores_in_psqls_restricted_mode(run_module, admin_params, pg_botdb, plain_backup,
                                                        drop_after):
    drop_after.append("from_plain")
    result = run_module(postgresql_restore, dict(admin_params, src=plain_backup["dest"], target_db="from_plain"))
    assert not result["failed"], result.get("msg")
    assert result["tables"] == plain_backup["tables"]


@pytest.mark.parametrize("where", ["own_line", "after_a_statement", "after_unrestrict"])
def test_a_plain_dump_cannot_run_psql_commands(run_module, admin_params, pg_botdb, plain_backup, tmp_path, where):
    """A dump with a psql meta-command added (the manifest updated to match) runs
    no shell: the restore fails, the marker file is never made, nothing is kept."""
    marker = tmp_path / "pwned"
    command = b"\\! touch " + str(marker).encode()

    def edit(sql):
        if where == "own_line":
            return command + b"\n" + sql
        if where == "after_a_statement":
            return sql.replace(b"SET statement_timeout = 0;", b"SET statement_timeout = 0; " + command, 1)
        key = re_restrict_key(sql)
        return sql.replace(b"SET statement_timeout = 0;",
                           b"\\unrestrict " + key + b"\n" + command + b"\nSET statement_timeout = 0;", 1)

    rewrite_plain(plain_backup, edit)
    result = run_module(postgresql_restore, dict(admin_params, src=plain_backup["dest"], target_db="never_plain"))
    assert result["failed"]
    assert "failed (rc=3): backslash commands are restricted; only \\unrestrict is allowed" in result["msg"]
    assert result["rc"] == 3 and "psql" in result["cmd"]
    assert not marker.exists()
    assert "never_plain" not in databases(pg_botdb)


def re_restrict_key(sql):
    import re  # pylint: disable=import-outside-toplevel
    match = re.search(rb"^\\restrict ([A-Za-z0-9]+)", sql, re.MULTILINE)
    assert match, "pg_dump writes \\restrict KEY into plain dumps"
    return match.group(1)


def test_the_safety_dump_is_a_set_the_catalog_knows(run_module, admin_params, pg_botdb, backup, drop_after):
    """The safety dump of a clean restore has a manifest: backup_info lists it (no
    'file without manifest' problem) and prune_unknown cannot take it as foreign."""
    from ansible_collections.botops.runbook.plugins.modules import backup_info  # pylint: disable=import-outside-toplevel
    drop_after.append("safety_listed")
    run_module(postgresql_restore, dict(admin_params, src=backup["dest"], target_db="safety_listed"))
    result = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], db="safety_listed", clean=True))
    assert not result["failed"], result.get("msg")
    info = run_module(backup_info, {"path": os.path.dirname(backup["dest"]), "verify_checksums": True})
    assert info["problems"] == [] and info["unknown_files"] == []
    listed = [b for b in info["backups"] if b["path"] == result["safety_backup"]]
    assert len(listed) == 1 and listed[0]["checksums"] == "ok" and listed[0]["verified"]


def test_a_database_name_that_would_leave_the_directory_is_refused(run_module, admin_params, pg_botdb,
                                                                   tmp_path, drop_after):
    """db '../escape' with dest_dir: an automatic name would land outside dest_dir."""
    pg_query(pg_botdb, "postgres", 'CREATE DATABASE "../escape"')
    drop_after.append("../escape")
    inner = tmp_path / "inner"
    inner.mkdir()
    result = run_module(postgresql_backup, dict(admin_params, db="../escape", dest_dir=str(inner)))
    assert result["failed"]
    assert "postgresql database name '../escape' cannot name a backup series directory" in result["msg"]
    assert os.listdir(str(tmp_path)) == ["inner"] and os.listdir(str(inner)) == []


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_dump_that_inflates_past_its_manifest_is_stopped_at_the_limit(
        run_module, admin_params, pg_botdb, backup, drop_after, jobs):
    """The manifest records the dump's size before compression; a dump swapped for
    one that inflates further (its size and sha256 updated in the manifest, which
    nothing authenticates) is stopped at that many bytes, on disk (jobs=2 writes a
    decompressed copy for pg_restore) and in the stream (jobs=1)."""
    import hashlib  # pylint: disable=import-outside-toplevel
    import json  # pylint: disable=import-outside-toplevel
    import zstandard  # pylint: disable=import-outside-toplevel
    with open(backup["manifest"]) as handle:
        manifest = json.load(handle)
    plain = zstandard.ZstdDecompressor().stream_reader(open(backup["dest"], "rb")).read()
    assert manifest["uncompressed_size"] == len(plain) > 0
    # the real dump, then 256 MiB of padding that pg_restore never reads as data
    bomb = zstandard.ZstdCompressor().compress(plain + b"\0" * (256 << 20))
    assert len(bomb) < 64 * 1024 + len(plain)
    with open(backup["dest"], "wb") as handle:
        handle.write(bomb)
    manifest["files"][0].update(size=len(bomb), sha256=hashlib.sha256(bomb).hexdigest())
    with open(backup["manifest"], "w") as handle:
        json.dump(manifest, handle)
    drop_after.append("inflated")
    result = run_module(postgresql_restore, dict(admin_params, src=backup["dest"], target_db="inflated", jobs=jobs))
    assert result["failed"] and "decompresses to more than the %d bytes its manifest records" % len(plain) \
        in result["msg"], result["msg"]
    assert "inflated" not in databases(pg_botdb)
