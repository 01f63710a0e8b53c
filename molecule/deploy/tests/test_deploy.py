# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy and rollback roles on real systemd hosts, through the real playbooks.

Converge deployed release 1.0.0 to both bots (deploy-bot1 on SQLite, deploy-bot2 on
PostgreSQL). These tests run in order: the good release is live; the migration
release goes out and is rolled back with its database; the broken release rolls
itself back on the first host and never reaches the second.
"""

import json
import os
import subprocess

import pytest
import testinfra

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
INVENTORY_FILE = os.environ["MOLECULE_INVENTORY_FILE"]
ROOT = "/srv/samplebot"
SQLITE_DB = ROOT + "/shared/data/bot_data.db"
BOTS = ["deploy-bot1", "deploy-bot2"]


def host(name):
    return testinfra.get_host("ansible://%s?ansible_inventory=%s" % (name, INVENTORY_FILE))


def playbook(name, *args):
    env = dict(os.environ, MOLECULE_PROJECT_DIRECTORY=REPO, ANSIBLE_FORCE_COLOR="false")
    return subprocess.run(["ansible-playbook", "-i", os.path.dirname(INVENTORY_FILE),
                           os.path.join(REPO, "playbooks", name)] + list(args),
                          capture_output=True, text=True, env=env, check=False)


def sql(name, query):
    if name == "deploy-bot1":
        return host(name).check_output("sqlite3 %s %s", SQLITE_DB, query)
    return host(name).check_output("runuser -u postgres -- psql -At -d samplebot -c %s", query)


def health(name):
    return json.loads(host(name).check_output("curl -s http://127.0.0.1:8080/health"))


def live_release(name):
    return host(name).file(ROOT + "/current").linked_to.rsplit("/", 1)[-1]


def ledger(name):
    return [json.loads(line) for line in host(name).file(ROOT + "/ledger.jsonl").content_string.splitlines()]


def counts(name):
    return {t: int(sql(name, "SELECT count(*) FROM %s" % t)) for t in ("users", "messages")}


@pytest.mark.parametrize("name", BOTS)
def test_the_good_release_is_live_healthy_and_hardened(name):
    h = host(name)
    assert live_release(name) == "1.0.0"
    assert health(name) == {"status": "ok", "version": "1.0.0", "schema": "0001"}
    service = h.service("samplebot")
    assert service.is_running and service.is_enabled
    assert h.process.get(comm="python").user == "samplebot"
    env = h.file(ROOT + "/shared/.env")
    assert (env.mode, env.user) == (0o600, "samplebot")
    assert 'BOT_TOKEN="molecule-test-token"' in env.content_string
    unit = h.file("/etc/systemd/system/samplebot.service").content_string
    for line in ("User=samplebot", "Restart=on-failure", "NoNewPrivileges=true", "ProtectSystem=strict",
                 "ReadWritePaths=%s/shared" % ROOT, "PrivateTmp=true", "ProtectHome=true", "MemoryMax=300M"):
        assert line in unit
    assert ledger(name)[-1]["outcome"] == "success"


def test_the_postgresql_roles_have_only_the_grants_they_need():
    h = host("deploy-bot2")
    monitor = "PGPASSWORD=molecule-monitor-password psql -h 127.0.0.1 -U samplebot_monitor -d samplebot -Atc %s"
    assert h.check_output(monitor, "SELECT count(*) FROM users") == "2"
    assert h.run(monitor, "INSERT INTO users VALUES (9, 'x', 'y')").rc != 0
    attrs = sql("deploy-bot2", "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = 'samplebot'")
    assert attrs == "f|f|f"
    assert sql("deploy-bot2", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'samplebot'") == "samplebot"


def test_check_mode_predicts_the_deploy_and_changes_nothing():
    same = playbook("deploy.yml", "--check", "-l", "deploy-bot1")
    assert same.returncode == 0 and "changed=0" in same.stdout, same.stdout[-2000:]

    newer = playbook("deploy.yml", "--check", "-l", "deploy-bot1", "-e", "deploy_version=1.1.0")
    assert newer.returncode == 0, newer.stdout[-2000:]
    assert "would back up the database, migrate, switch to release 1.1.0" in newer.stdout
    assert live_release("deploy-bot1") == "1.0.0"
    assert not host("deploy-bot1").file(ROOT + "/releases/1.1.0").exists
    assert ledger("deploy-bot1")[-1]["release"] == "1.0.0"


@pytest.mark.parametrize("name", BOTS)
def test_the_migration_release_rolls_back_with_its_database(name):
    sql(name, "INSERT INTO messages (id, user_id, body, sent_at) VALUES (100, 1, 'before 1.1.0', 'now')")
    before = counts(name)

    deployed = playbook("deploy.yml", "-l", name, "-e", "deploy_version=1.1.0")
    assert deployed.returncode == 0, deployed.stdout[-3000:]
    assert live_release(name) == "1.1.0"
    assert health(name)["schema"] == "0002"
    sql(name, "INSERT INTO reminders (id, user_id, due_at, text) VALUES (1, 1, 'soon', 'written under 1.1.0')")
    entry = ledger(name)[-1]
    assert (entry["release"], entry["previous_release"], entry["schema_before"], entry["schema_after"]) == \
        ("1.1.0", "1.0.0", "0001", "0002")
    assert host(name).file(entry["backup"]).exists

    rolled = playbook("rollback.yml", "-l", name, "-e", "rollback_restore_database=true")
    assert rolled.returncode == 0, rolled.stdout[-3000:]
    assert live_release(name) == "1.0.0"
    assert health(name) == {"status": "ok", "version": "1.0.0", "schema": "0001"}
    assert counts(name) == before
    assert "reminders" not in sql(name, "SELECT group_concat(name) FROM sqlite_master"
                                  if name == "deploy-bot1" else
                                  "SELECT string_agg(tablename, ',') FROM pg_tables WHERE schemaname = 'public'")
    entry = ledger(name)[-1]
    assert (entry["kind"], entry["release"], entry["outcome"]) == ("rollback", "1.0.0", "success")
    if name == "deploy-bot1":
        assert host(name).file(entry["safety_copy"]).exists, "the state under 1.1.0 is kept"
    else:  # the database under 1.1.0 is kept, renamed
        assert sql(name, "SELECT count(*) FROM pg_database WHERE datname = '%s'" % entry["safety_copy"]) == "1"


def test_the_broken_release_rolls_back_on_the_first_host_and_stops_there():
    before = {name: counts(name) for name in BOTS}
    untouched_ledger = host("deploy-bot2").file(ROOT + "/ledger.jsonl").content_string

    result = playbook("deploy.yml", "-e", "deploy_version=1.2.0")
    assert result.returncode != 0
    out = result.stdout + result.stderr  # ansible-core 2.19 prints failures on stderr
    assert "The deploy of release 1.2.0 on deploy-bot1 failed and was rolled back" in out, out[-3000:]
    assert "deleted_at" in out, "the summary names the cause"
    assert "The database was restored from" in out

    # deploy-bot1: back on 1.0.0, healthy, its database as before the deploy.
    assert live_release("deploy-bot1") == "1.0.0"
    assert health("deploy-bot1") == {"status": "ok", "version": "1.0.0", "schema": "0001"}
    assert counts("deploy-bot1") == before["deploy-bot1"]
    assert sql("deploy-bot1", "PRAGMA integrity_check") == "ok"
    failed = [e for e in ledger("deploy-bot1") if e["release"] == "1.2.0"]
    assert [e["outcome"] for e in failed] == ["rolled_back"]
    assert host("deploy-bot1").file(failed[0]["safety_copy"]).exists

    # deploy-bot2: serial 1 and max_fail_percentage 0 kept the play from reaching it.
    assert not host("deploy-bot2").file(ROOT + "/releases/1.2.0").exists
    assert live_release("deploy-bot2") == "1.0.0"
    assert health("deploy-bot2")["version"] == "1.0.0"
    assert host("deploy-bot2").file(ROOT + "/ledger.jsonl").content_string == untouched_ledger


def test_a_missing_source_is_refused_before_anything_changes():
    result = playbook("deploy.yml", "-l", "deploy-bot2", "-e", "deploy_version=9.9.9")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "samplebot-9.9.9.tar.gz does not exist on the controller" in out, out[-2000:]
    assert live_release("deploy-bot2") == "1.0.0"
    assert not host("deploy-bot2").file(ROOT + "/releases/9.9.9").exists


def test_rollback_refuses_clearly_without_a_prior_release():
    # deploy-bot2 runs 1.0.0 from its first deploy (1.1.0 came and was rolled back).
    result = playbook("rollback.yml", "-l", "deploy-bot2")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "has no prior release to roll back to" in out, out[-2000:]
    assert live_release("deploy-bot2") == "1.0.0"
    assert health("deploy-bot2")["status"] == "ok"


def test_pruning_keeps_the_live_release_even_when_it_is_the_oldest():
    # deploy-bot1 holds 1.0.0 (live, oldest), 1.1.0 and 1.2.0 (failed).
    result = playbook("deploy.yml", "-l", "deploy-bot1", "-e", "deploy_keep_releases=2")
    assert result.returncode == 0, result.stdout[-2000:]
    releases = host("deploy-bot1").check_output("ls %s/releases", ROOT).split()
    assert releases == ["1.0.0", "1.2.0"]
    assert health("deploy-bot1")["version"] == "1.0.0"
