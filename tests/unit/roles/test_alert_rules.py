# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitoring role's alert rules, rendered by Ansible from the role's defaults
alone, checked with `promtool check rules` and unit-tested with `promtool test
rules`: for every alert (and each severity) a case that fires at its threshold and
one that stays quiet just below it."""

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
ROLE = os.path.join(REPO, "roles", "monitoring")
PROMTOOL = shutil.which("promtool")
MIB = 1024 * 1024
DB = {"bot": "samplebot", "engine": "sqlite", "database": "bot_data", "instance": "bot1:9100"}
BOT = {"bot": "samplebot", "instance": "bot1:9100"}
PG = {"instance": "db1:9187"}

pytestmark = pytest.mark.skipif(not PROMTOOL, reason="promtool is missing: scripts/setup.sh installs prometheus")


def series(name, labels, values):
    return {"series": "%s{%s}" % (name, ",".join('%s="%s"' % kv for kv in sorted(labels.items()))),
            "values": values}


def case(alert, interval, inputs, at, fires):
    """fires: [(severity, labels)] expected at ``at``; [] for quiet."""
    return alert, {"interval": interval, "input_series": inputs, "alert_rule_test": [{
        "eval_time": at, "alertname": alert,
        "exp_alerts": [{"exp_labels": dict(labels, severity=severity)} for severity, labels in fires]}]}


def constant(value, count):
    return "%s+0x%d" % (value, count)


CASES = [
    # Backup age: the newest verified set's timestamp stays 0 while time() runs on.
    case("BotopsBackupStale", "1m", [series("botops_backup_last_success_timestamp_seconds", DB, constant(0, 1600))],
         "25h20m", [("warning", DB)]),
    case("BotopsBackupStale", "1m", [series("botops_backup_last_success_timestamp_seconds", DB, constant(0, 1600))],
         "24h50m", []),
    case("BotopsBackupMissing", "1m", [series("botops_backup_last_success_timestamp_seconds", DB, constant(0, 3000))],
         "48h20m", [("critical", DB)]),
    case("BotopsBackupMissing", "1m", [series("botops_backup_last_success_timestamp_seconds", DB, constant(0, 3000))],
         "47h50m", []),
    # A database with no backup metric at all.
    case("BotopsBackupMissing", "1m", [series("botops_database_size_bytes", DB, constant(4096, 30))],
         "15m", [("critical", DB)]),
    case("BotopsBackupMissing", "1m", [series("botops_database_size_bytes", DB, constant(4096, 30)),
                                       series("botops_backup_last_success_timestamp_seconds", DB, "0+60x30")],
         "15m", []),
    case("BotopsRestoreDrillStale", "4m",
         [series("botops_restore_drill_last_success_timestamp_seconds", DB, constant(0, 3100))], "8d1h",
         [("warning", DB)]),
    case("BotopsRestoreDrillStale", "4m",
         [series("botops_restore_drill_last_success_timestamp_seconds", DB, constant(0, 3100))], "7d23h", []),
    case("BotopsRestoreDrillStale", "1m",
         [series("botops_restore_drill_last_run_timestamp_seconds", DB, constant(0, 30))], "15m", [("warning", DB)]),
    case("BotopsIntegrityCheckFailed", "1m", [series("botops_integrity_check_ok", DB, constant(0, 5))], "2m",
         [("critical", DB)]),
    case("BotopsIntegrityCheckFailed", "1m", [series("botops_integrity_check_ok", DB, constant(1, 5))], "2m", []),
    case("BotopsBotDown", "1m", [series("botops_bot_up", BOT, constant(0, 10))], "6m", [("critical", BOT)]),
    case("BotopsBotDown", "1m", [series("botops_bot_up", BOT, "1 1 1 1 1 1 0 0 0 0")], "9m", []),
    case("BotopsBotRestartLoop", "1m", [series("botops_bot_restarts_total", BOT, "0x20 1 2 3 3")], "23m",
         [("warning", BOT)]),
    case("BotopsBotRestartLoop", "1m", [series("botops_bot_restarts_total", BOT, "0x20 1 2 2 2")], "23m", []),
    case("BotopsBotUnhealthy", "1m", [series("botops_bot_health_ok", BOT, constant(0, 10))], "6m",
         [("warning", BOT)]),
    case("BotopsBotUnhealthy", "1m", [series("botops_bot_health_ok", BOT, constant(1, 10))], "6m", []),
    case("BotopsBotMemoryHigh", "1m", [series("botops_bot_memory_bytes", BOT, constant(201 * MIB, 10))], "6m",
         [("warning", BOT)]),
    case("BotopsBotMemoryHigh", "1m", [series("botops_bot_memory_bytes", BOT, constant(301 * MIB, 10))], "6m",
         [("warning", BOT), ("critical", BOT)]),
    case("BotopsBotMemoryHigh", "1m", [series("botops_bot_memory_bytes", BOT, constant(199 * MIB, 10))], "6m", []),
    case("BotopsDatabaseLarge", "1m", [series("botops_database_size_bytes", DB, constant(501 * MIB, 5)),
                                       series("botops_backup_last_success_timestamp_seconds", DB, "0+60x5")],
         "2m", [("warning", DB)]),
    case("BotopsDatabaseLarge", "1m", [series("botops_database_size_bytes", DB, constant(1025 * MIB, 5))], "2m",
         [("warning", DB), ("critical", DB)]),
    case("BotopsDatabaseLarge", "1m", [series("botops_database_size_bytes", DB, constant(499 * MIB, 5))], "2m", []),
    # Linear growth over more than a day: delta over [1d] is the daily growth.
    case("BotopsDatabaseGrowthHigh", "1h", [series("botops_database_size_bytes", DB, "0+%dx30" % (6 * MIB // 24))],
         "1d2h", [("warning", DB)]),
    case("BotopsDatabaseGrowthHigh", "1h", [series("botops_database_size_bytes", DB, "0+%dx30" % (4 * MIB // 24))],
         "1d2h", []),
]

ROOT_FS = {"instance": "bot1:9100", "mountpoint": "/", "fstype": "ext4", "device": "/dev/sda1"}
TMP_FS = dict(ROOT_FS, mountpoint="/run", fstype="tmpfs", device="tmpfs")


def disk(labels, used_percent):
    return [series("node_filesystem_avail_bytes", labels, constant(100 - used_percent, 10)),
            series("node_filesystem_size_bytes", labels, constant(100, 10))]


ERRORS = dict(BOT, level="ERROR")
CASES += [
    case("BotopsDiskSpaceLow", "1m", disk(ROOT_FS, 81), "6m", [("warning", ROOT_FS)]),
    case("BotopsDiskSpaceLow", "1m", disk(ROOT_FS, 91), "6m", [("warning", ROOT_FS), ("critical", ROOT_FS)]),
    case("BotopsDiskSpaceLow", "1m", disk(ROOT_FS, 79), "6m", []),
    case("BotopsDiskSpaceLow", "1m", disk(TMP_FS, 99), "6m", []),
    case("BotopsBotErrorRate", "1m", [series("botops_bot_log_lines_total", ERRORS, "0+3x20")], "15m",
         [("warning", BOT)]),
    case("BotopsBotErrorRate", "1m", [series("botops_bot_log_lines_total", ERRORS, "0+1x20")], "15m", []),
    case("BotopsCollectorStale", "1m",
         [series("botops_collector_last_run_timestamp_seconds", {"instance": "bot1:9100"}, constant(0, 10))], "6m",
         [("warning", {"instance": "bot1:9100"})]),
    case("BotopsCollectorStale", "1m",
         [series("botops_collector_last_run_timestamp_seconds", {"instance": "bot1:9100"}, "0+60x10")], "6m", []),
    case("BotopsCollectorStale", "1m",
         [series("node_textfile_scrape_error", {"instance": "bot1:9100"}, constant(1, 5))], "2m",
         [("warning", {"instance": "bot1:9100"})]),
    case("BotopsCollectorStale", "1m",
         [series("node_textfile_mtime_seconds", {"instance": "bot1:9100", "file": "botops.prom"}, constant(0, 10)),
          series("node_textfile_mtime_seconds", {"instance": "bot1:9100", "file": "other.prom"}, constant(0, 10))],
         "6m", [("warning", {"instance": "bot1:9100", "file": "botops.prom"})]),
    # A source that fails (a corrupt manifest, an unreadable record) is reported too.
    case("BotopsCollectorStale", "1m",
         [series("botops_collector_errors_total", {"instance": "bot1:9100", "source": "backups"}, "0 0 0 1 2 3 4")],
         "5m", [("warning", {"instance": "bot1:9100", "source": "backups"})]),
    case("BotopsCollectorStale", "1m",
         [series("botops_collector_errors_total", {"instance": "bot1:9100", "source": "backups"}, constant(3, 20))],
         "15m", []),
    case("BotopsCollectorStale", "1m",
         [series("node_textfile_scrape_error", {"instance": "bot1:9100"}, constant(0, 5)),
          series("node_textfile_mtime_seconds", {"instance": "bot1:9100", "file": "botops.prom"}, "0+60x10")],
         "6m", []),
]


def connections(used):
    return [series("pg_stat_activity_count", dict(PG, datname="samplebot", state="active"), constant(used - 5, 10)),
            series("pg_stat_activity_count", dict(PG, datname="samplebot", state="idle"), constant(5, 10)),
            series("pg_settings_max_connections", dict(PG, server="127.0.0.1:5432"), constant(100, 10))]


CASES += [
    case("BotopsPostgresConnectionsHigh", "1m", connections(81), "6m", [("warning", PG)]),
    case("BotopsPostgresConnectionsHigh", "1m", connections(96), "6m", [("warning", PG), ("critical", PG)]),
    case("BotopsPostgresConnectionsHigh", "1m", connections(79), "6m", []),
]


def render(tmp_path, extra_vars=None):
    """The rules file as the role renders it, from its defaults and vars only."""
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "vars_files": [os.path.join(ROLE, "defaults", "main.yml"), os.path.join(ROLE, "vars", "main.yml")],
        "tasks": [{"ansible.builtin.template": {"src": os.path.join(ROLE, "templates", "botops.rules.yml.j2"),
                                                "dest": str(tmp_path / "botops.rules.yml"), "mode": "0644"}}],
    }]))
    argv = ["ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook),
            "-e", "ansible_python_interpreter=%s" % shutil.which("python")]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    return tmp_path / "botops.rules.yml"


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    return render(tmp_path_factory.mktemp("rules"))


def alert_names():
    with open(os.path.join(ROLE, "vars", "main.yml")) as handle:
        return yaml.safe_load(handle)["__monitoring_alert_names"]


def test_the_rules_render_from_the_defaults_and_pass_promtool_check(rules):
    done = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    groups = yaml.safe_load(rules.read_text())["groups"]
    rendered = {r["alert"] for g in groups for r in g["rules"]}
    assert rendered == set(alert_names())
    for rule in (r for g in groups for r in g["rules"]):
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        text = rule["annotations"]["description"]
        assert "$value" in text and "$labels.instance" in text, rule["alert"]
        if "botops_" in rule["expr"] and "collector" not in rule["expr"]:
            assert "$labels.bot" in text, rule["alert"]
        if "botops_database" in rule["expr"] or "botops_backup" in rule["expr"]:
            assert "$labels.database" in text, rule["alert"]


def test_every_alert_has_a_firing_and_a_quiet_case():
    fires = {alert for alert, test in CASES if test["alert_rule_test"][0]["exp_alerts"]}
    quiet = {alert for alert, test in CASES if not test["alert_rule_test"][0]["exp_alerts"]}
    assert fires == set(alert_names()) and quiet == set(alert_names())
    severities = {(alert, e["exp_labels"]["severity"]) for alert, test in CASES
                  for e in test["alert_rule_test"][0]["exp_alerts"]}
    assert {a for a, s in severities if s == "critical"} >= {
        "BotopsBotMemoryHigh", "BotopsDatabaseLarge", "BotopsDiskSpaceLow", "BotopsPostgresConnectionsHigh"}


def promtool_test(rules_file, tests):
    test_file = rules_file.parent / ("%s.test.yml" % rules_file.stem)
    test_file.write_text(yaml.safe_dump({"rule_files": [rules_file.name], "evaluation_interval": "1m",
                                         "tests": tests}))
    done = subprocess.run([PROMTOOL, "test", "rules", str(test_file)], capture_output=True, text=True,
                          cwd=str(rules_file.parent), check=False)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


def test_promtool_unit_tests_of_every_alert(rules):
    """When each alert fires (its annotations are the next test's: promtool compares
    them whole, so these cases run on the rules without them)."""
    document = yaml.safe_load(rules.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations")
    bare = rules.parent / "bare.rules.yml"
    bare.write_text(yaml.safe_dump(document))
    promtool_test(bare, [test for _alert, test in CASES])


def test_annotations_name_the_bot_the_database_and_the_value(rules):
    _alert, test = case("BotopsBackupStale", "1m",
                        [series("botops_backup_last_success_timestamp_seconds", DB, constant(0, 1600))],
                        "25h20m", [("warning", DB)])
    test["alert_rule_test"][0]["exp_alerts"][0]["exp_annotations"] = {
        "summary": "Backup of samplebot/bot_data is stale",
        "description": "The newest verified backup of sqlite database bot_data of bot samplebot on bot1:9100 is "
                       "1d 1h 20m 0s old (more than 25 h)."}
    _alert, memory = case("BotopsBotMemoryHigh", "1m",
                          [series("botops_bot_memory_bytes", BOT, constant(201 * MIB, 10))], "6m",
                          [("warning", BOT)])
    memory["alert_rule_test"][0]["exp_alerts"][0]["exp_annotations"] = {
        "summary": "Bot samplebot uses much memory",
        "description": "Bot samplebot on bot1:9100 uses 201MiB (warning above 200 MB); restart it and "
                       "investigate leaks."}
    _alert, missing = case("BotopsBackupMissing", "1m",
                           [series("botops_database_size_bytes", DB, constant(4096, 30))], "15m", [("critical", DB)])
    missing["alert_rule_test"][0]["exp_alerts"][0]["exp_annotations"] = {
        "summary": "Backup of samplebot/bot_data is missing",
        "description": "sqlite database bot_data of bot samplebot on bot1:9100 has no verified backup at all "
                       "(limit 48 h)."}
    promtool_test(rules, [test, memory, missing])


def test_overrides_change_for_and_labels_and_can_disable(tmp_path):
    rules = render(tmp_path, {"monitoring_alert_overrides": {
        "BotopsBotDown": {"for": "10s", "labels": {"team": "bots"}}, "BotopsDiskSpaceLow": {"enabled": False}}})
    by_name = {r["alert"]: r for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"]}
    assert by_name["BotopsBotDown"]["for"] == "10s"
    assert by_name["BotopsBotDown"]["labels"] == {"severity": "critical", "team": "bots"}
    assert "BotopsDiskSpaceLow" not in by_name


def test_the_rules_use_only_metrics_the_collector_writes(rules):
    from test_dashboard import collector_metrics  # noqa: E402 pylint: disable=import-outside-toplevel
    exprs = [r["expr"] for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"]]
    used = {name for expr in exprs for name in re.findall(r"\b(botops_[a-z_]+)", expr)}
    assert used and used <= collector_metrics(), used - collector_metrics()
