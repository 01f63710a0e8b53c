# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""postgresql_backup against the harness's real PostgreSQL server."""

import json
import os
import socket
import stat
import subprocess
import threading
import time

import pytest
from dbtools import pg_query

from ansible_collections.botops.runbook.plugins.module_utils import _backupset
from ansible_collections.botops.runbook.plugins.module_utils._files import sha256_file
from ansible_collections.botops.runbook.plugins.modules import postgresql_backup

CONTENT_CHECKSUM = """
    SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM (
        SELECT 'u' || u::text AS t FROM users u UNION ALL SELECT 'm' || m::text FROM messages m
        UNION ALL SELECT 'a' || a::text FROM pgbench_accounts a) x
"""


def restore_by_hand(info, dump, compression, target):
    """Restore a custom-format dump with the stock tools, to prove it is a real dump."""
    pg_query(info, "postgres", "CREATE DATABASE %s" % target)
    env = dict(os.environ, PGPASSWORD=info["superuser_password"])
    reader = {"zstd": ["zstd", "-dc", dump], "gzip": ["gzip", "-dc", dump], "none": ["cat", dump]}[compression]
    data = subprocess.run(reader, check=True, capture_output=True).stdout
    subprocess.run([os.path.join(info["bindir"], "pg_restore"), "--no-owner", "-h", info["host"], "-p",
                    str(info["port"]), "-U", "postgres", "-d", target], input=data, env=env, check=True,
                   capture_output=True)


@pytest.fixture
def backups(tmp_path):
    directory = tmp_path / "backups"
    directory.mkdir()
    return directory


def test_check_mode_connects_and_writes_nothing(run_module, pg_params, backups):
    result = run_module(postgresql_backup, dict(pg_params, dest_dir=str(backups)), check_mode=True)
    assert not result["failed"], result.get("msg")
    assert result["changed"] is True
    assert result["database_size"] > 0 and result["server_version"].startswith("15")
    assert os.listdir(backups) == []


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_custom_dump_round_trip(run_module, pg_params, pg_botdb, backups, compression):
    result = run_module(postgresql_backup, dict(pg_params, dest_dir=str(backups), compression=compression,
                                                row_counts="exact", bot="clip-saver"))
    assert not result["failed"], result.get("msg")
    assert result["changed"] is True
    assert sorted(os.listdir(backups)) == sorted([os.path.basename(result["dest"]),
                                                  os.path.basename(result["manifest"])])
    assert stat.S_IMODE(os.stat(result["dest"]).st_mode) == 0o600
    assert result["checksum"] == sha256_file(result["dest"])
    assert "login_password" not in json.dumps(result["cmd"]) and pg_params["login_password"] not in json.dumps(result)

    manifest = json.loads(open(result["manifest"]).read())
    assert manifest["engine"] == "postgresql" and manifest["database"] == "botdb" and manifest["bot"] == "clip-saver"
    assert manifest["source"]["format"] == "custom" and manifest["compression"] == compression
    assert manifest["tables"]["public.pgbench_accounts"] == 100000
    assert manifest["tables"]["public.messages"] == 5000
    assert manifest["files"][0]["sha256"] == result["checksum"]

    target = "roundtrip_%s" % compression
    try:
        restore_by_hand(pg_botdb, result["dest"], compression, target)
        assert pg_query(pg_botdb, target, CONTENT_CHECKSUM) == pg_query(pg_botdb, "botdb", CONTENT_CHECKSUM)
    finally:
        pg_query(pg_botdb, "postgres", "DROP DATABASE IF EXISTS %s" % target)


def test_plain_and_directory_formats(run_module, pg_params, backups):
    plain = run_module(postgresql_backup, dict(pg_params, dest_dir=str(backups), format="plain", compression="gzip"))
    assert not plain["failed"], plain.get("msg")
    assert plain["dest"].endswith(".sql.gz")
    directory = run_module(postgresql_backup, dict(pg_params, dest_dir=str(backups), format="directory", jobs=2))
    assert not directory["failed"], directory.get("msg")
    assert os.path.isdir(directory["dest"]) and directory["dest"].endswith(".dir")
    assert stat.S_IMODE(os.stat(directory["dest"]).st_mode) == 0o700
    names = {f["name"] for f in directory["files"]}
    assert os.path.basename(directory["dest"]) + "/toc.dat" in names
    assert not [n for n in os.listdir(backups) if n.startswith(".")], "no temporary left behind"


def test_verify_restore_and_globals(run_module, pg_params, pg_botdb, backups):
    result = run_module(postgresql_backup, dict(pg_params, dest_dir=str(backups), verify="restore", globals=True,
                                                login_user="postgres", login_password=pg_botdb["superuser_password"]))
    assert not result["failed"], result.get("msg")
    assert result["verified"] == {"method": "restore", "ok": True}
    assert [f for f in result["files"] if ".globals.sql" in f["name"]]
    leftovers = pg_query(pg_botdb, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'botops_verify_%'")
    assert leftovers == [], "the scratch database is dropped"


@pytest.mark.parametrize("fmt", ["custom", "plain"])
def test_selected_tables_only_and_counted(run_module, pg_params, pg_botdb, backups, fmt):
    result = run_module(postgresql_backup, dict(pg_params, dest_dir=str(backups), exclude_tables=["pgbench_*"],
                                                format=fmt, verify="restore", login_user="postgres",
                                                login_password=pg_botdb["superuser_password"]))
    assert not result["failed"], result.get("msg")
    assert sorted(result["tables"]) == ["public.messages", "public.users"]
    only = run_module(postgresql_backup, dict(pg_params, dest_dir=str(backups), tables=["public.users"], format=fmt))
    assert not only["failed"], only.get("msg")
    assert list(only["tables"]) == ["public.users"]


# --- bad input: a clear error, and nothing written ---------------------------

def test_wrong_password(run_module, pg_params, backups):
    result = run_module(postgresql_backup, dict(pg_params, dest_dir=str(backups), login_password="wrong"))
    assert result["failed"]
    assert "cannot connect to database 'botdb'" in result["msg"] and "password authentication failed" in result["msg"]
    assert "wrong" not in result["msg"]
    assert os.listdir(backups) == []


def test_database_missing(run_module, pg_params, backups):
    result = run_module(postgresql_backup, dict(pg_params, dest_dir=str(backups), db="no_such_db"))
    assert result["failed"] and "no_such_db" in result["msg"] and "does not exist" in result["msg"]


def test_unreachable_server_is_bounded_by_connect_timeout(run_module, pg_params, backups):
    """A loopback port that accepts connections and never answers, like a dead host."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)
    held = []
    stop = threading.Event()

    def accept():
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except socket.timeout:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        result = run_module(postgresql_backup, dict(pg_params, dest_dir=str(backups),
                                                    login_port=silent.getsockname()[1], connect_timeout=2))
        took = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        silent.close()
    assert result["failed"] and "cannot connect" in result["msg"]
    assert took < 10
    assert os.listdir(backups) == []


def fake_bin(tmp_path, script):
    """A stand-in pg_dump: what cannot exist here (an old client, a broken one)."""
    directory = tmp_path / "fakebin"
    directory.mkdir(exist_ok=True)
    for name in ("pg_dump", "pg_restore", "pg_dumpall", "psql"):
        path = directory / name
        path.write_text("#!/bin/sh\n" + script)
        path.chmod(0o755)
    return str(directory)


def test_pg_dump_missing(run_module, pg_params, backups, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_module(postgresql_backup, dict(pg_params, dest_dir=str(backups), bin_dir=str(empty)))
    assert result["failed"] and "'pg_dump' not found" in result["msg"]


def test_client_older_than_server(run_module, pg_params, backups, tmp_path):
    bin_dir = fake_bin(tmp_path, 'echo "pg_dump (PostgreSQL) 13.9"\n')
    result = run_module(postgresql_backup, dict(pg_params, dest_dir=str(backups), bin_dir=bin_dir))
    assert result["failed"]
    assert "13.9" in result["msg"] and "PostgreSQL 15" in result["msg"]
    assert os.listdir(backups) == []


def test_pg_dump_error_on_stderr_with_exit_0(run_module, pg_params, backups, tmp_path):
    bin_dir = fake_bin(tmp_path, 'case "$1" in --version) echo "pg_dump (PostgreSQL) 15.18";; '
                                 '*) echo "pg_dump: error: query failed: permission denied" >&2;; esac\nexit 0\n')
    result = run_module(postgresql_backup, dict(pg_params, dest_dir=str(backups), bin_dir=bin_dir))
    assert result["failed"] and "permission denied" in result["msg"] and "pg_dump" in result["msg"]
    assert os.listdir(backups) == []


def test_disk_full_during_dump(run_module, pg_params, small_fs, monkeypatch):
    point = small_fs("256k")
    (point / "earlier.dump").write_bytes(b"earlier")
    monkeypatch.setattr(_backupset, "check_destination_dir", lambda directory, needed: 0)
    result = run_module(postgresql_backup, dict(pg_params, dest_dir=str(point), compression="none"))
    assert result["failed"] and "no space left on device" in result["msg"]
    assert os.listdir(point) == ["earlier.dump"]


def test_jobs_need_directory_format(run_module, pg_params, backups):
    result = run_module(postgresql_backup, dict(pg_params, dest_dir=str(backups), jobs=2))
    assert result["failed"] and "format=directory" in result["msg"]


def test_a_second_backup_of_the_database_waits_on_the_servers_lock(run_module, pg_params, pg_botdb, tmp_path):
    """The lock is an advisory lock on the server: a backup running anywhere (held
    here by a plain session) makes this one wait, then fail clearly."""
    import psycopg2  # pylint: disable=import-outside-toplevel
    holder = psycopg2.connect(host=pg_botdb["host"], port=pg_botdb["port"], dbname=pg_params["db"], user="postgres",
                              password=pg_botdb["superuser_password"])
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))",
                        ("botops.runbook backup of %s" % pg_params["db"],))
        result = run_module(postgresql_backup, dict(pg_params, dest_dir=str(tmp_path), lock_timeout=1))
    finally:
        holder.close()
    assert result["failed"] and "another backup of database '%s'" % pg_params["db"] in result["msg"]
    assert "lock_timeout" in result["msg"] and os.listdir(str(tmp_path)) == []
    after = run_module(postgresql_backup, dict(pg_params, dest_dir=str(tmp_path), lock_timeout=1))
    assert not after["failed"], after.get("msg")
