# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The throwaway PostgreSQL server carries the runbooks' two roles, as promised."""

import psycopg2
import pytest


def connect(info, role, db=None):
    return psycopg2.connect(host=info["host"], port=info["port"], dbname=db or info["app_db"],
                            user=info["%s_user" % role], password=info["%s_password" % role], connect_timeout=5)


def test_server_is_private_postgresql_15_or_newer(pg_server):
    assert pg_server["host"] == "127.0.0.1"
    with connect(pg_server, "app") as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version_num")
        assert int(cur.fetchone()[0]) >= 150000
    with connect(pg_server, "monitor") as conn, conn.cursor() as cur:  # pg_monitor reads all settings
        cur.execute("SHOW unix_socket_directories")
        assert cur.fetchone()[0] == pg_server["socket_dir"]


def test_app_role_writes_monitor_role_only_reads(pg_server):
    with connect(pg_server, "app") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS harness_probe (id serial PRIMARY KEY, note text)")
        cur.execute("INSERT INTO harness_probe (note) VALUES ('hello')")
    monitor = connect(pg_server, "monitor")
    try:
        with monitor.cursor() as cur:
            cur.execute("SELECT count(*) FROM harness_probe")
            assert cur.fetchone()[0] >= 1
            cur.execute("SELECT count(*) FROM pg_stat_activity")  # pg_monitor sees every session
            assert cur.fetchone()[0] >= 1
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("INSERT INTO harness_probe (note) VALUES ('not allowed')")
    finally:
        monitor.close()


def test_wrong_password_is_refused(pg_server):
    info = dict(pg_server, app_password="wrong")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        connect(info, "app")
