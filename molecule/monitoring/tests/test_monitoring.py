# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host -> node exporter -> Prometheus -> rule: the metrics carry the manifests'
values, stopping the bot and an aged backup fire their alerts in a real Prometheus,
and both resolve after the fix; a forced rotation neither resets nor double-counts
the log-line counter. The tests run in file order (one story)."""

import datetime
import json
import os
import re
import subprocess
import time

import testinfra

BOT = testinfra.get_host("podman://mon-bot1")
PROM = testinfra.get_host("podman://mon-prom1")
SERIES = '{bot="samplebot",database="bot_data",engine="sqlite"}'
PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]


def metrics():
    text = BOT.check_output("curl -sf http://127.0.0.1:9100/metrics")
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(botops_\S+) (\S+)$", text, re.M)}


def collect():
    BOT.check_output("systemctl start botops-collect.service")


def alerts():
    body = json.loads(PROM.check_output("curl -sf http://127.0.0.1:9090/api/v1/alerts"))
    return {(a["labels"]["alertname"], a["state"]) for a in body["data"]["alerts"]}


def wait_for(what, predicate, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(2)
    raise AssertionError("waited %d s for %s; alerts now: %s" % (timeout, what, sorted(alerts())))


def backup():
    done = subprocess.run(["ansible-playbook", os.path.join(PROJECT, "playbooks", "backup.yml"),
                           "-i", os.environ["MOLECULE_INVENTORY_FILE"]], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:]


def newest_manifest():
    tree = "/var/backups/botops/samplebot/sqlite-bot_data"
    name = sorted(n for n in BOT.check_output("ls %s" % tree).split() if n.endswith(".manifest.json"))[-1]
    return json.loads(BOT.file("%s/%s" % (tree, name)).content_string)


def test_the_metrics_carry_the_manifests_values():
    collect()
    m = metrics()
    manifest = newest_manifest()
    created = datetime.datetime.strptime(manifest["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert abs(m["botops_backup_last_success_timestamp_seconds" + SERIES] - created) < 2
    assert m["botops_backup_last_size_bytes" + SERIES] == sum(f["size"] for f in manifest["files"])
    assert m['botops_bot_up{bot="samplebot"}'] == 1
    assert m['botops_bot_health_ok{bot="samplebot"}'] == 1
    assert m['botops_bot_release_info{bot="samplebot",release="1.0.0"}'] == 1
    assert m['botops_bot_memory_bytes{bot="samplebot"}'] > 1024 * 1024
    assert m["botops_database_size_bytes" + SERIES] > 0
    assert time.time() - m["botops_collector_last_run_timestamp_seconds"] < 30
    assert all(v == 0 for k, v in m.items() if k.startswith("botops_collector_errors_total"))


def test_prometheus_scrapes_the_host_and_loaded_every_rule():
    targets = json.loads(PROM.check_output("curl -sf http://127.0.0.1:9090/api/v1/targets"))
    assert [t["health"] for t in targets["data"]["activeTargets"]] == ["up"]
    rules = json.loads(PROM.check_output("curl -sf http://127.0.0.1:9090/api/v1/rules"))
    names = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert len(names) == 14 and "BotopsBotDown" in names


def test_a_stopped_bot_fires_bot_down_and_it_resolves():
    BOT.check_output("systemctl stop samplebot.service")
    try:
        wait_for("BotopsBotDown firing", lambda: ("BotopsBotDown", "firing") in alerts())
    finally:
        BOT.check_output("systemctl start samplebot.service")
    wait_for("BotopsBotDown resolved", lambda: not any(a == "BotopsBotDown" for a, _s in alerts()))


def test_an_aged_backup_fires_backup_stale_and_a_new_one_resolves_it():
    wait_for("BotopsBackupStale firing", lambda: ("BotopsBackupStale", "firing") in alerts())
    backup()
    wait_for("BotopsBackupStale resolved", lambda: not any(a == "BotopsBackupStale" for a, _s in alerts()),
             timeout=60)


def test_a_forced_rotation_neither_resets_nor_double_counts():
    log = "/srv/samplebot/shared/logs/bot.log"
    collect()
    before = metrics()['botops_bot_log_lines_total{bot="samplebot",level="ERROR"}']
    BOT.check_output("for i in 1 2 3; do echo \"2026-12-03 ERROR samplebot: test $i\" >> %s; done" % log)
    BOT.check_output("logrotate -f /etc/logrotate.d/botops-samplebot")
    BOT.check_output("for i in 4 5; do echo \"2026-12-03 ERROR samplebot: test $i\" >> %s; done" % log)
    BOT.check_output("logrotate -f /etc/logrotate.d/botops-samplebot")
    collect()
    assert metrics()['botops_bot_log_lines_total{bot="samplebot",level="ERROR"}'] == before + 5
    # The bot goes on writing into the live file; the older rotation is compressed.
    size = BOT.file(log).size
    BOT.check_output("curl -sf http://127.0.0.1:8080/health")
    assert BOT.file(log).size > size
    assert BOT.file(log + ".2.gz").exists
    collect()
    assert metrics()['botops_bot_log_lines_total{bot="samplebot",level="ERROR"}'] == before + 5
