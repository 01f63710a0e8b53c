# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""postgresql_vacuum against the harness's real server."""

import time

import psycopg2
import pytest

from ansible_collections.botops.runbook.plugins.modules import postgresql_vacuum


@pytest.fixture
def admin_params(pg_botdb):
    return {"login_host": pg_botdb["host"], "login_port": pg_botdb["port"], "login_user": "postgres",
            "login_password": pg_botdb["superuser_password"], "db": pg_botdb["app_db"]}


def execute(info, statement, fetch=False):
    conn = psycopg2.connect(host=info["host"], port=info["port"], dbname="botdb", user="postgres",
                            password=info["superuser_password"])
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if fetch else None
    finally:
        conn.close()


@pytest.fixture
def bloated(pg_botdb):
    """A table with many dead tuples, as the statistics see them."""
    execute(pg_botdb, "DROP TABLE IF EXISTS vac_probe; CREATE TABLE vac_probe (id int PRIMARY KEY, v text); "
                      "INSERT INTO vac_probe SELECT g, md5(g::text) FROM generate_series(1, 20000) g; "
                      "DELETE FROM vac_probe WHERE id % 2 = 0")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # statistics are flushed within about a second
        dead = execute(pg_botdb, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'vac_probe'", True)
        if dead and dead[0][0] > 0:
            break
        time.sleep(0.3)
    yield "public.vac_probe"
    execute(pg_botdb, "DROP TABLE IF EXISTS vac_probe")


def test_vacuum_check_then_real_then_again(run_module, admin_params, bloated):
    args = dict(admin_params, tables=[bloated])
    checked = run_module(postgresql_vacuum, args, check_mode=True)
    assert not checked["failed"], checked.get("msg")
    assert checked["changed"] is True and checked["before"][bloated]["dead_tuples"] >= 10000
    assert checked["after"] == checked["before"]
    real = run_module(postgresql_vacuum, args)
    assert real["changed"] is True
    assert real["after"][bloated]["dead_tuples"] == 0
    assert real["statements"] == ['VACUUM (ANALYZE) "public"."vac_probe"']
    again = run_module(postgresql_vacuum, args)
    assert again["changed"] is False


def test_reindex_concurrently_and_analyze(run_module, admin_params, bloated):
    reindex = run_module(postgresql_vacuum, dict(admin_params, operation="reindex", tables=[bloated]))
    assert not reindex["failed"], reindex.get("msg")
    assert reindex["statements"] == ['REINDEX TABLE CONCURRENTLY "public"."vac_probe"']
    index = run_module(postgresql_vacuum, dict(admin_params, operation="reindex", indexes=["vac_probe_pkey"]))
    assert not index["failed"], index.get("msg")
    whole = run_module(postgresql_vacuum, dict(admin_params, operation="analyze"))
    assert not whole["failed"] and whole["statements"] == ["ANALYZE"]
    schema = run_module(postgresql_vacuum, dict(admin_params, schema="public", full=True))
    assert not schema["failed"], schema.get("msg")
    assert 'VACUUM (FULL, ANALYZE) "public"."vac_probe"' in schema["statements"]


def test_a_table_name_cannot_inject_sql(run_module, admin_params, pg_botdb):
    evil = 'users"; DROP TABLE users; --'
    result = run_module(postgresql_vacuum, dict(admin_params, tables=[evil, "users; DROP TABLE messages"]))
    assert result["failed"] and "not found" in result["msg"] and "DROP TABLE users" in result["msg"]
    assert execute(pg_botdb, "SELECT count(*) FROM users", True)[0][0] == 300
    assert execute(pg_botdb, "SELECT count(*) FROM messages", True)[0][0] == 5000


def test_missing_schema_and_wrong_password(run_module, admin_params):
    schema = run_module(postgresql_vacuum, dict(admin_params, schema="nope"))
    assert schema["failed"] and "schema 'nope' not found" in schema["msg"]
    wrong = run_module(postgresql_vacuum, dict(admin_params, login_password="nope"))
    assert wrong["failed"] and "password authentication failed" in wrong["msg"]
