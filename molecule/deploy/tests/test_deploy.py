# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy and rollback roles on real systemd hosts, through the real playbooks.

Converge deployed release 1.0.0 to both bots (deploy-bot1 on SQLite, deploy-bot2 on
PostgreSQL). The side effect (side_effect.yml) then ran the story - check mode, the
migration release and its rollback with the database, the broken release, two
refusals, pruning - and kept, after each step, every host's state (snapshot.py) and
the output of the runs whose output matters. Each test reads the record of the steps
it is about, and the hosts as they are at the end; none runs a playbook or changes a
host, so they pass or fail alone and in any order.
"""

import json
import os
import re

import pytest
import testinfra

INVENTORY_FILE = os.environ["MOLECULE_INVENTORY_FILE"]
RECORD = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "record")
ROOT = "/srv/samplebot"
BOTS = ["deploy-bot1", "deploy-bot2"]
HEALTHY_100 = {"status": "ok", "version": "1.0.0", "schema": "0001"}


def host(name):
    # Inspected through podman exec; the playbooks under test reach the hosts over ssh.
    return testinfra.get_host("podman://%s" % name)


def snapshot(step, name):
    """The state of host `name` right after `step` of side_effect.yml."""
    path = os.path.join(RECORD, step, name + ".json")
    assert os.path.exists(path), "side_effect.yml did not record %s for %s (did the side effect run?)" % (step, name)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def run(name):
    """Exit code and output of an ansible-playbook run of side_effect.yml."""
    with open(os.path.join(RECORD, "runs", name + ".json"), encoding="utf-8") as f:
        result = json.load(f)
    result["out"] = result["stdout"] + result["stderr"]  # ansible-core 2.19 prints failures on stderr
    return result


def sql(name, query):
    if name == "deploy-bot1":
        return host(name).check_output("sqlite3 %s %s", ROOT + "/shared/data/bot_data.db", query)
    return host(name).check_output("runuser -u postgres -- psql -At -d samplebot -c %s", query)


def health(name):
    return json.loads(host(name).check_output("curl -s http://127.0.0.1:8080/health"))


@pytest.mark.parametrize("name", BOTS)
def test_the_good_release_is_live_healthy_and_hardened(name):
    converged = snapshot("converged", name)
    assert converged["live"] == "1.0.0"
    assert converged["health"] == HEALTHY_100
    assert converged["service"] == {"active": "active", "enabled": "enabled", "user": "samplebot"}
    assert converged["ledger"][-1]["outcome"] == "success"

    # The unit and the .env are the same at the end (every step deployed the same settings).
    h = host(name)
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
    assert health(name) == HEALTHY_100


# The sandbox the unit must have (systemctl show's names for the role's default
# deploy_unit_hardening): the test fails when one is dropped or weakened.
SANDBOX = {
    "CapabilityBoundingSet": "", "AmbientCapabilities": "", "NoNewPrivileges": "yes", "PrivateUsers": "yes",
    "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
    "ProtectProc": "invisible", "UMask": "0027", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes",
    "RestrictNamespaces": "yes", "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes", "SystemCallArchitectures": "native", "RemoveIPC": "yes",
}
EXPOSURE = re.compile(r"^\W*Overall exposure level for samplebot\.service: (\d+\.\d+) (\w+)", re.MULTILINE)


def show(h, *properties):
    out = h.check_output("systemctl show -p %s samplebot.service", ",".join(properties))
    return dict(line.split("=", 1) for line in out.splitlines())


@pytest.mark.parametrize("name", BOTS)
def test_the_unit_is_sandboxed_and_rated_ok_by_systemd(name, capsys):
    h = host(name)
    # systemd's own rating of the deployed unit (LC_ALL=C: ASCII marks, "-" for an exposure).
    report = h.check_output("LC_ALL=C systemd-analyze security --no-pager samplebot.service")
    found = EXPOSURE.search(report)
    assert found, report[-2000:]
    exposure = float(found.group(1))
    with capsys.disabled():  # in the verifier's log even when the test passes
        print("\n%s: systemd-analyze security samplebot.service: overall exposure %s %s"
              % (name, found.group(1), found.group(2)))
    exposed = [line for line in report.splitlines() if line.startswith("- ")]
    assert exposure <= 2.0, "exposure %s; still exposed:\n%s" % (exposure, "\n".join(exposed))

    # The directives as systemd loaded them.
    loaded = show(h, *sorted(SANDBOX), "RestrictAddressFamilies", "SystemCallFilter", "SystemCallErrorNumber", "After")
    assert {k: loaded[k] for k in SANDBOX} == SANDBOX
    assert set(loaded["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    allowed = set(loaded["SystemCallFilter"].split())
    assert {"read", "write", "connect", "epoll_wait", "futex"} <= allowed, "an allow list of @system-service"
    assert not allowed & {"setuid", "setgroups", "chroot", "mount", "reboot", "init_module", "setrlimit",
                          "sched_setscheduler", "ptrace", "kexec_load"}, "without @privileged, @resources, ..."
    assert loaded["SystemCallErrorNumber"] in ("1", "EPERM")
    if name == "deploy-bot2":  # the PostgreSQL bot starts after its server
        assert "postgresql.service" in loaded["After"].split()

    # And in effect on the running bot: no capability, no new privileges, a seccomp
    # filter, its own user and mount namespaces, the root read-only and shared/ writable.
    # (In these podman hosts systemd lacks CAP_SYS_ADMIN and sets up the mount sandbox
    # only inside PrivateUsers' namespace; without it ProtectSystem= is silently not
    # applied. ProtectProc= is loaded but not applied here: podman's masked /proc keeps
    # a fresh one from being mounted, so it is not checked at run time.)
    pid = show(h, "MainPID")["MainPID"]
    assert pid != "0", "samplebot is not running"
    status = dict(line.split(":", 1) for line in h.file("/proc/%s/status" % pid).content_string.splitlines())
    assert {k: status[k].strip() for k in ("CapEff", "CapBnd", "NoNewPrivs", "Seccomp")} == \
        {"CapEff": "0000000000000000", "CapBnd": "0000000000000000", "NoNewPrivs": "1", "Seccomp": "2"}
    for ns in ("user", "mnt"):
        assert h.check_output("readlink /proc/%s/ns/%s", pid, ns) != h.check_output("readlink /proc/1/ns/%s", ns)
    mounts = {}  # mount point -> (the mounted directory, options) of the last mount there
    for line in h.file("/proc/%s/mountinfo" % pid).content_string.splitlines():
        fields = line.split()
        mounts[fields[4]] = (fields[3], fields[5].split(","))
    assert "ro" in mounts["/"][1] and "rw" in mounts[ROOT + "/shared"][1], mounts
    assert "ro" in mounts["/sys/fs/cgroup"][1] and "ro" in mounts["/dev"][1], mounts
    assert "/systemd-private-" in mounts["/tmp"][0], mounts


def test_the_postgresql_roles_have_only_the_grants_they_need():
    # As the deploy made them, and as the rollback gave them again on the database it
    # restored as new.
    expected = {"monitor_select_users": "2", "app_attrs": "f|f|f", "owner": "samplebot"}
    for step in ("converged", "rolled_back"):
        grants = snapshot(step, "deploy-bot2")["grants"]
        assert grants["monitor_insert_rc"] != 0, step
        assert {k: grants[k] for k in expected} == expected, step

    h = host("deploy-bot2")
    monitor = "PGPASSWORD=molecule-monitor-password psql -h 127.0.0.1 -U samplebot_monitor -d samplebot -Atc %s"
    assert h.check_output(monitor, "SELECT count(*) FROM users") == "2"
    assert h.run(monitor, "INSERT INTO users VALUES (9, 'x', 'y')").rc != 0
    attrs = sql("deploy-bot2", "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = 'samplebot'")
    assert attrs == "f|f|f"
    assert sql("deploy-bot2", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'samplebot'") == "samplebot"


def test_check_mode_predicts_the_deploy_and_changes_nothing():
    same = run("check_same")
    assert same["rc"] == 0 and "changed=0" in same["stdout"], same["out"][-2000:]

    newer = run("check_newer")
    assert newer["rc"] == 0, newer["out"][-2000:]
    assert "would back up the database, migrate, switch to release 1.1.0" in newer["stdout"]
    after = snapshot("after_check", "deploy-bot1")
    assert after["live"] == "1.0.0"
    assert "1.1.0" not in after["releases"]
    assert after["ledger"][-1]["release"] == "1.0.0"
    assert after["ledger_text"] == snapshot("converged", "deploy-bot1")["ledger_text"]


@pytest.mark.parametrize("name", BOTS)
def test_the_migration_release_rolls_back_with_its_database(name):
    before = snapshot("before_migration", name)["counts"]

    migrated = snapshot("migrated", name)
    assert migrated["live"] == "1.1.0"
    assert migrated["health"]["schema"] == "0002"
    entry = migrated["ledger"][-1]
    assert (entry["release"], entry["previous_release"], entry["schema_before"], entry["schema_after"]) == \
        ("1.1.0", "1.0.0", "0001", "0002")
    assert host(name).file(entry["backup"]).exists  # backups are never removed by these steps
    assert "reminders" in snapshot("migrated_reminder", name)["tables"]

    rolled = snapshot("rolled_back", name)
    assert rolled["live"] == "1.0.0"
    assert rolled["health"] == HEALTHY_100
    assert rolled["counts"] == before
    assert "reminders" not in rolled["tables"]
    entry = rolled["ledger"][-1]
    assert (entry["kind"], entry["release"], entry["outcome"]) == ("rollback", "1.0.0", "success")
    if name == "deploy-bot1":
        assert host(name).file(entry["safety_copy"]).exists, "the state under 1.1.0 is kept"
    else:  # the database under 1.1.0 is kept, renamed
        assert sql(name, "SELECT count(*) FROM pg_database WHERE datname = '%s'" % entry["safety_copy"]) == "1"


def test_the_broken_release_rolls_back_on_the_first_host_and_stops_there():
    result = run("broken")
    assert result["rc"] != 0
    out = result["out"]
    assert "The deploy of release 1.2.0 on deploy-bot1 failed and was rolled back" in out, out[-3000:]
    assert "deleted_at" in out, "the summary names the cause"
    assert "The database was restored from" in out

    # deploy-bot1: back on 1.0.0, healthy, its database as before the deploy.
    before, after = snapshot("rolled_back", "deploy-bot1"), snapshot("after_broken", "deploy-bot1")
    assert after["live"] == "1.0.0"
    assert after["health"] == HEALTHY_100
    assert after["counts"] == before["counts"]
    assert after["integrity"] == "ok"
    failed = [e for e in after["ledger"] if e["release"] == "1.2.0"]
    assert [e["outcome"] for e in failed] == ["rolled_back"]
    assert host("deploy-bot1").file(failed[0]["safety_copy"]).exists

    # deploy-bot2: serial 1 and max_fail_percentage 0 kept the play from reaching it.
    before, after = snapshot("rolled_back", "deploy-bot2"), snapshot("after_broken", "deploy-bot2")
    assert "1.2.0" not in after["releases"]
    assert after["live"] == "1.0.0"
    assert after["health"]["version"] == "1.0.0"
    assert after["counts"] == before["counts"]
    assert after["ledger_text"] == before["ledger_text"]


def test_a_missing_source_is_refused_before_anything_changes():
    result = run("missing_source")
    assert result["rc"] != 0
    assert "samplebot-9.9.9.tar.gz does not exist on the controller" in result["out"], result["out"][-2000:]
    after = snapshot("after_refusals", "deploy-bot2")
    assert after["live"] == "1.0.0"
    assert "9.9.9" not in after["releases"]
    assert after["ledger_text"] == snapshot("after_broken", "deploy-bot2")["ledger_text"]


def test_rollback_refuses_clearly_without_a_prior_release():
    # deploy-bot2 runs 1.0.0 from its first deploy (1.1.0 came and was rolled back).
    result = run("no_prior_release")
    assert result["rc"] != 0
    assert "has no prior release to roll back to" in result["out"], result["out"][-2000:]
    after = snapshot("after_refusals", "deploy-bot2")
    assert after["live"] == "1.0.0"
    assert after["health"]["status"] == "ok"


def test_pruning_keeps_the_live_release_even_when_it_is_the_oldest():
    # deploy-bot1 held 1.0.0 (live, oldest), 1.1.0 and 1.2.0 (failed) before this deploy.
    assert snapshot("after_broken", "deploy-bot1")["releases"] == ["1.0.0", "1.1.0", "1.2.0"]
    pruned = snapshot("pruned", "deploy-bot1")
    assert pruned["releases"] == ["1.0.0", "1.2.0"]
    assert pruned["health"]["version"] == "1.0.0"
    assert host("deploy-bot1").check_output("ls %s/releases", ROOT).split() == ["1.0.0", "1.2.0"]


def test_the_postgresql_bot_is_measured_as_its_monitoring_role():
    """The postgres exporter answers for the bot's server and the collector reads
    the database's size, both as samplebot_monitor, the password only in 0600 files."""
    h = host("deploy-bot2")
    h.check_output("systemctl start botops-collect.service")
    exporter = h.check_output("curl -sf http://127.0.0.1:9187/metrics")
    assert re.search(r"^pg_up 1", exporter, re.M), exporter[:2000]
    metrics = h.check_output("cat /var/lib/prometheus/node-exporter/botops.prom")
    size = re.search(r'^botops_database_size_bytes\{bot="samplebot",database="samplebot",engine="postgresql"\} (\S+)$',
                     metrics, re.M)
    assert size and float(size.group(1)) > 0, metrics
    assert re.search(r'^botops_collector_errors_total\{source="database_size"\} 0', metrics, re.M), metrics
    for path in ("/etc/default/prometheus-postgres-exporter", "/etc/botops-collect/pgpass"):
        assert h.file(path).mode == 0o600 and h.file(path).user == "root"
    assert "molecule-monitor-password" not in h.check_output("ps -eo args")
