# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""postgresql_check against the harness's real server, as the monitoring role."""

import psycopg2
import pytest

from ansible_collections.botops.runbook.plugins.modules import postgresql_check


@pytest.fixture
def monitor_params(pg_botdb):
    return {"login_host": pg_botdb["host"], "login_port": pg_botdb["port"], "login_user": pg_botdb["monitor_user"],
            "login_password": pg_botdb["monitor_password"], "db": pg_botdb["app_db"]}


def superuser(info, db="botdb"):
    conn = psycopg2.connect(host=info["host"], port=info["port"], dbname=db, user="postgres",
                            password=info["superuser_password"], application_name="pytest")
    conn.autocommit = True
    return conn


@pytest.mark.parametrize("check_mode", [False, True])
def test_healthy_database_as_the_monitoring_role(run_module, monitor_params, check_mode):
    result = run_module(postgresql_check, monitor_params, check_mode=check_mode)
    assert not result["failed"], result.get("msg")
    assert result["changed"] is False and result["ok"] is True and result["problems"] == []
    assert result["server_version"].startswith("15")
    assert result["database_size"] > 0
    assert "public.pgbench_accounts" in [t["table"] for t in result["largest_tables"]]
    assert 0 < result["connections"]["used"] <= result["connections"]["max"]
    assert result["checksum_failures"] == 0  # the harness initdb's with --data-checksums


def test_amcheck_checks_every_btree_index(run_module, monitor_params, pg_botdb):
    conn = superuser(pg_botdb)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        as_monitor = run_module(postgresql_check, monitor_params)
        assert as_monitor["ok"] and as_monitor["amcheck"] == "no permission"
        assert any("GRANT EXECUTE" in w for w in as_monitor["warnings_found"])
        as_superuser = run_module(postgresql_check, dict(monitor_params, login_user="postgres",
                                                         login_password=pg_botdb["superuser_password"]))
        assert as_superuser["ok"], as_superuser.get("msg")
        assert as_superuser["amcheck"].startswith("checked ") and int(as_superuser["amcheck"].split()[1]) >= 5
    finally:
        with conn.cursor() as cur:
            cur.execute("DROP EXTENSION IF EXISTS amcheck")
        conn.close()


def test_long_transaction_and_connection_thresholds(run_module, monitor_params, pg_botdb):
    holder = superuser(pg_botdb)
    holder.autocommit = False
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT 1")  # opens a transaction and leaves it open
        failed = run_module(postgresql_check, dict(monitor_params, long_transaction_seconds=0))
        assert failed["failed"] and "open for" in failed["msg"]
        reported = run_module(postgresql_check, dict(monitor_params, long_transaction_seconds=0,
                                                     connections_critical=0.0, fail_on_problems=False))
        assert reported["ok"] is False
        assert any(t["application_name"] == "pytest" for t in reported["long_transactions"])
        assert any("max_connections" in p for p in reported["problems"])
    finally:
        holder.close()


def test_wrong_password_and_missing_database(run_module, monitor_params):
    wrong = run_module(postgresql_check, dict(monitor_params, login_password="nope"))
    assert wrong["failed"] and "password authentication failed" in wrong["msg"]
    missing = run_module(postgresql_check, dict(monitor_params, db="no_such_db"))
    assert missing["failed"] and "no_such_db" in missing["msg"]
