# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled playbooks run as AWX runs a job: through ansible-runner, over ssh,
with the project's ansible.cfg and extra vars exactly as a survey sends them
(strings, "" for an unanswered optional), once as a normal job and once as a check
job. Each asserts the runner's status and rc, the per-host stats from its artifacts,
and what the job did (or, for a check job, did not do) on the hosts."""

import json
import os
import subprocess

import ansible_runner
import pytest
import testinfra
import yaml

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
HOSTS = ("pb-bot1", "pb-db1")
SQLITE_SERIES = "/var/backups/botops/samplebot/sqlite-bot_data"
PG_SERIES = "/var/backups/botops/samplebot/postgresql-samplebot"
DB = "/srv/samplebot/shared/data/bot_data.db"
# Survey answers as AWX passes them: no boolean type (awx#553), numbers as text, a
# cleared optional as "" (semaphore#1533).
SURVEY = {"backup_keep_daily": "14", "backup_keep_weekly": "", "backup_prune": "true", "backup_offsite": "false",
          "backup_compression": "", "backup_collect": "0"}


def podman_host(name):
    return testinfra.get_host("podman://%s" % name)


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    """An ssh inventory of the scenario's hosts, as a user's (or AWX's) inventory is."""
    key = subprocess.run([os.path.join(PROJECT, "scripts", "setup.sh"), "ssh-key-path"], capture_output=True,
                         text=True, check=True).stdout.strip()
    work = tmp_path_factory.mktemp("runner")
    address = {name: subprocess.run(["podman", "inspect", "--format",
                                     "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name],
                                    capture_output=True, text=True, check=True).stdout.strip() for name in HOSTS}
    common = {"ansible_user": "root", "ansible_python_interpreter": "/usr/bin/python3",
              "ansible_ssh_private_key_file": key,
              "ansible_ssh_common_args": "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=accept-new"
                                         % (work / "known_hosts")}
    data = {"all": {"vars": dict(common, botops_bot_name="samplebot"), "children": {
        "bots": {"children": {"sqlite_bots": {"hosts": {"pb-bot1": {"ansible_host": address["pb-bot1"]}}},
                              "postgresql_bots": {"hosts": {"pb-db1": {"ansible_host": address["pb-db1"]}}}}},
        "backup_hosts": {"hosts": {"pb-db1": {}}}}}}
    path = work / "hosts.yml"
    path.write_text(yaml.safe_dump(data))
    empty = work / "empty.yml"
    empty.write_text(yaml.safe_dump({"all": {"vars": common, "children": {
        "bots": {}, "others": {"hosts": {"pb-bot1": {"ansible_host": address["pb-bot1"]}}}}}}))
    return {"path": str(path), "empty": str(empty), "work": work}


def job(inventory, playbook, extravars=None, check=False, limit=None, inventory_file=None):
    """One AWX-style job through ansible-runner; returns (runner, stdout)."""
    private = inventory["work"] / ("%s-%s" % (playbook, len(os.listdir(inventory["work"]))))
    private.mkdir()
    runner = ansible_runner.run(
        private_data_dir=str(private),
        project_dir=PROJECT,
        playbook=os.path.join(PROJECT, "playbooks", playbook),
        inventory=inventory_file or inventory["path"],
        extravars=extravars or {},
        cmdline="--check" if check else None,
        limit=limit,
        envvars={"ANSIBLE_CONFIG": os.path.join(PROJECT, "ansible.cfg"),
                 "ANSIBLE_COLLECTIONS_PATH": os.environ["ANSIBLE_COLLECTIONS_PATH"],
                 "ANSIBLE_FORCE_COLOR": "false"},
        quiet=True)
    return runner, runner.stdout.read()


def assert_successful(runner, out, hosts=HOSTS):
    assert runner.status == "successful" and runner.rc == 0, out[-4000:]
    stats = runner.stats
    assert not stats["failures"] and not stats["dark"], stats
    assert set(stats["ok"]) >= set(hosts), stats


def assert_failed(runner, out, *phrases):
    assert runner.status == "failed" and runner.rc != 0, out[-4000:]
    tail = "\n".join(out.rstrip().splitlines()[-60:])
    for phrase in phrases:
        assert phrase in tail, "%r not in the last lines:\n%s" % (phrase, tail)


def files_under(name, *paths):
    return podman_host(name).check_output(
        "find %s -printf '%%p %%s %%T@ %%m\\n' 2>/dev/null | sort || true" % " ".join(paths))


def sets(name, series):
    return sorted(n for n in podman_host(name).check_output("ls %s" % series).split() if n.endswith(".manifest.json"))


def test_a_check_job_of_the_backup_changes_nothing(inventory):
    before = {name: files_under(name, "/var/backups", "/var/lib/botops") for name in HOSTS}
    runner, out = job(inventory, "backup.yml", SURVEY, check=True)
    assert_successful(runner, out)
    assert "would be backed up" in out
    assert {name: files_under(name, "/var/backups", "/var/lib/botops") for name in HOSTS} == before


def test_the_nightly_backup_job_backs_up_both_engines_and_prunes(inventory):
    # The deploy's pre-deploy backup is there already; four jobs make five sets a
    # series, of which backup_keep_last (3) and keep_daily (one a day) keep three.
    for dummy in range(4):
        runner, out = job(inventory, "backup.yml", SURVEY)
        assert_successful(runner, out)
    assert "backup pb-bot1: samplebot/sqlite-bot_data" in out and "backup pb-db1: samplebot/postgresql-samplebot" in out
    assert "pruned 1" in out
    assert len(sets("pb-bot1", SQLITE_SERIES)) == 3
    assert len(sets("pb-db1", PG_SERIES)) == 3
    for name, series in (("pb-bot1", SQLITE_SERIES), ("pb-db1", PG_SERIES)):
        newest = json.loads(podman_host(name).file("%s/%s" % (series, sets(name, series)[-1])).content_string)
        assert newest["verified"]["ok"] is True
        assert podman_host(name).file(series).mode == 0o700


def test_a_failed_database_is_named_and_does_not_skip_the_others(inventory):
    count = len(sets("pb-bot1", SQLITE_SERIES))
    before = podman_host("pb-bot1").check_output("ls %s" % SQLITE_SERIES)
    survey = dict(SURVEY, backup_prune="false", botops_databases=[{"path": "/srv/nowhere/gone.db"}])
    runner, out = job(inventory, "backup.yml", survey, limit="pb-bot1")
    assert_failed(runner, out, "backup failed on pb-bot1 for 1 of 2 database(s)", "samplebot/sqlite-gone",
                  "/srv/nowhere/gone.db")
    after = podman_host("pb-bot1").check_output("ls %s" % SQLITE_SERIES)
    assert len(sets("pb-bot1", SQLITE_SERIES)) == count + 1, (before, after)


def test_a_boolean_that_is_not_one_fails_before_any_change(inventory):
    before = files_under("pb-bot1", "/var/backups")
    runner, out = job(inventory, "backup.yml", dict(SURVEY, backup_prune="maybe"))
    assert_failed(runner, out, "backup_prune='maybe' must be a boolean")
    assert files_under("pb-bot1", "/var/backups") == before


def test_a_job_whose_target_matched_no_host_fails(inventory):
    runner, out = job(inventory, "check.yml", inventory_file=inventory["empty"])
    assert_failed(runner, out, "check.yml: its hosts 'bots'", "matched no host")


@pytest.mark.parametrize("check", [True, False], ids=["check-job", "job"])
def test_the_check_job_checks_both_engines_and_the_security(inventory, check):
    runner, out = job(inventory, "check.yml", {"check_integrity": "", "check_amcheck": "yes", "check_collect": "false"},
                      check=check)
    assert_successful(runner, out)
    assert "check pb-bot1: samplebot/sqlite-bot_data ok" in out and "security ok" in out
    assert "check pb-db1: samplebot/postgresql-samplebot ok" in out
    record = podman_host("pb-db1").file("/var/lib/botops/state/last_check.json")
    if not check:
        assert json.loads(record.content_string)["databases"]["samplebot/postgresql-samplebot"]["ok"] is True


def test_the_check_job_names_a_backup_others_can_read(inventory):
    victim = "%s/%s" % (SQLITE_SERIES, sets("pb-bot1", SQLITE_SERIES)[-1])
    bot = podman_host("pb-bot1")
    bot.run("chmod o+r %s" % victim)
    try:
        runner, out = job(inventory, "check.yml", limit="pb-bot1")
        assert_failed(runner, out, "check found 1 problem(s) on pb-bot1", "%s is readable by others" % victim,
                      "chmod o-rwx")
    finally:
        bot.run("chmod o-r %s" % victim)


@pytest.mark.parametrize("check", [True, False], ids=["check-job", "job"])
def test_the_maintenance_job(inventory, check):
    runner, out = job(inventory, "maintenance.yml", {"maintenance_sqlite_vacuum_freelist_ratio": "0.2",
                                                     "maintenance_postgresql_reindex": "false"}, check=check)
    assert_successful(runner, out)
    assert "maintenance pb-bot1: samplebot/sqlite-bot_data analyze" in out
    assert "maintenance pb-db1: samplebot/postgresql-samplebot vacuum analyze" in out


def test_maintenance_changes_nothing_the_second_time(inventory):
    runner, out = job(inventory, "maintenance.yml")
    assert_successful(runner, out)
    assert not runner.stats["changed"].get("pb-bot1"), out[-3000:]


@pytest.mark.parametrize("check", [True, False], ids=["check-job", "job"])
def test_the_restore_drill_job(inventory, check):
    before = files_under("pb-db1", "/var/lib/botops")
    runner, out = job(inventory, "restore_drill.yml", check=check)
    assert_successful(runner, out)
    if check:
        assert "would drill" in out and files_under("pb-db1", "/var/lib/botops") == before
    else:
        assert "restore drill pb-db1: samplebot/postgresql-samplebot restored into scratch space" in out
        drill = json.loads(podman_host("pb-db1").file("/var/lib/botops/state/last_drill.json").content_string)
        assert drill["databases"]["samplebot/postgresql-samplebot"]["outcome"] == "ok"


def test_a_restore_without_confirmation_is_refused_and_changes_nothing(inventory):
    bot = podman_host("pb-bot1")
    digest = bot.check_output("sha256sum %s" % DB)
    runner, out = job(inventory, "restore.yml", {"restore_database": "bot_data", "confirm_restore": ""}, limit="pb-bot1")
    assert_failed(runner, out, "restore refused on pb-bot1", "confirm_restore is not set",
                  "-e confirm_restore=bot_data")
    assert bot.check_output("sha256sum %s" % DB) == digest
    runner, out = job(inventory, "restore.yml", {"restore_database": "bot_data", "confirm_restore": "bot_dat"},
                      limit="pb-bot1")
    assert_failed(runner, out, "confirm_restore is 'bot_dat'")


@pytest.mark.parametrize("name, database", [("pb-bot1", "bot_data"), ("pb-db1", "samplebot")])
def test_a_confirmed_restore_is_gated_and_recorded(inventory, name, database):
    runner, out = job(inventory, "restore.yml", {"restore_database": database, "confirm_restore": database,
                                                 "restore_backup": ""}, limit=name)
    assert_successful(runner, out, hosts=(name,))
    assert "will overwrite" in out and "passed its health gate" in out
    entry = json.loads(podman_host(name).check_output("tail -n 1 /srv/samplebot/ledger.jsonl"))
    assert entry["kind"] == "restore" and entry["outcome"] == "success" and entry["safety_copy"]
    assert '"status": "ok"' in podman_host(name).check_output("curl -s http://127.0.0.1:8080/health")
