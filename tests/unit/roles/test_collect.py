# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""botops-collect (roles/monitoring/files) against real state: backup sets made by
sqlite_backup, the drill/check/off-host records, a ledger, a log, a /health that
answers. It runs as on a bot host: Debian's python3 with Debian's
prometheus_client, a separate process, the collection's module_utils on its path.
systemctl is the one stand-in (this machine has no systemd; the Molecule
monitoring scenario reads real units)."""

import http.server
import json
import os
import re
import shutil
import stat
import subprocess
import threading
import time

import pytest

import ansible_collections.botops.runbook as collection
from ansible_collections.botops.runbook.plugins.modules import sqlite_backup

import botdb

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
COLLECTOR = os.path.join(REPO, "roles", "monitoring", "files", "botops_collect.py")
COLLECTIONS_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(collection.__path__[0])))
SYSTEM_PYTHON = "/usr/bin/python3"
SAMPLE = re.compile(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$')

pytestmark = pytest.mark.skipif(
    subprocess.run([SYSTEM_PYTHON, "-c", "import prometheus_client"], capture_output=True, check=False).returncode != 0,
    reason="Debian's python3-prometheus-client is missing: scripts/setup.sh installs it")


def parse(text):
    """{(name, frozenset(labels)): value} of a textfile."""
    metrics = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, labels, value = SAMPLE.match(line).groups()
        pairs = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', labels or ""))
        metrics[(name, pairs)] = float(value)
    return metrics


def value(metrics, name, **labels):
    return metrics.get((name, frozenset(labels.items())))


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the handler's API)
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def health_url():
    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d/health" % server.server_port
    server.shutdown()


@pytest.fixture
def host(tmp_path, health_url):
    """A bot host's tree in tmp_path, and the collector's configuration for it."""
    tree = tmp_path / "host"
    for sub in ("backups", "state", "textfile", "srv/releases/1.1.0", "log"):
        (tree / sub).mkdir(parents=True)
    os.symlink(str(tree / "srv/releases/1.1.0"), str(tree / "srv/current"))
    db = str(tree / "srv/bot_data.db")
    botdb.create(db)
    systemctl = tree / "systemctl"
    systemctl.write_text("#!/bin/sh\n[ \"$2\" = gone.service ] && { echo LoadState=not-found; exit 0; }\n"
                         "printf 'LoadState=loaded\\nActiveState=%%s\\nNRestarts=3\\nMemoryCurrent=52428800\\n' "
                         "\"$(cat %s)\"\n" % (tree / "active"))
    systemctl.chmod(0o755)
    (tree / "active").write_text("active")
    config = {
        "textfile": str(tree / "textfile/botops.prom"), "state_file": str(tree / "collect/state.json"),
        "state_dir": str(tree / "state"), "backup_root": str(tree / "backups"), "systemctl": str(systemctl),
        "bots": [{"name": "samplebot", "unit": "samplebot.service", "root": str(tree / "srv"),
                  "health_url": health_url, "health_expect": '"status": "ok"', "logs": [str(tree / "log/bot.log")],
                  "databases": [{"engine": "sqlite", "path": db}]}],
    }
    (tree / "config.json").write_text(json.dumps(config))
    return tree, config


def collect(tree, expect_rc=0):
    env = dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT)
    done = subprocess.run([SYSTEM_PYTHON, COLLECTOR, "--config", str(tree / "config.json")],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == expect_rc, done.stderr
    return done


def metrics_of(tree):
    return parse((tree / "textfile/botops.prom").read_text())


def backup(run_module, config):
    result = run_module(sqlite_backup, {"path": config["bots"][0]["databases"][0]["path"],
                                        "backup_root": config["backup_root"], "bot": "samplebot"})
    assert not result.get("failed"), result.get("msg")
    with open(result["dest"] + ".manifest.json") as handle:
        return result, json.load(handle)


def test_every_source_gives_its_metrics(run_module, host):
    tree, config = host
    backup(run_module, config)
    result, manifest = backup(run_module, config)
    series = dict(bot="samplebot", engine="sqlite", database="bot_data")
    record = dict(series, last_run=1796300000, last_success=1796200000, outcome="failed")
    (tree / "state/last_drill.json").write_text(json.dumps({"databases": {"samplebot/sqlite-bot_data": record}}))
    (tree / "state/last_check.json").write_text(json.dumps(
        {"databases": {"samplebot/sqlite-bot_data": dict(series, last_run=1796300100, ok=False)}}))
    (tree / "state/last_offsite.json").write_text(json.dumps(
        {"databases": {"samplebot/sqlite-bot_data": dict(series, last_copy=1796300200)}}))
    (tree / "srv/ledger.jsonl").write_text(
        json.dumps({"id": "a", "outcome": "success", "release": "1.0.0", "finished_at": "2026-12-01T10:00:00Z"})
        + "\n" + json.dumps({"id": "b", "outcome": "failed", "release": "1.2.0",
                             "finished_at": "2026-12-02T10:00:00Z"}) + "\n")
    (tree / "log/bot.log").write_text("INFO ready\nERROR one\nCRITICAL two\nERROR three\nWARNING x\n")

    collect(tree)
    m = metrics_of(tree)
    import datetime
    created = datetime.datetime.strptime(manifest["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert value(m, "botops_backup_last_success_timestamp_seconds", **series) == created
    assert value(m, "botops_backup_last_size_bytes", **series) == sum(f["size"] for f in manifest["files"])
    assert value(m, "botops_backup_last_duration_seconds", **series) is not None
    assert value(m, "botops_backup_sets", **series) == 2
    assert value(m, "botops_restore_drill_last_run_timestamp_seconds", **series) == 1796300000
    assert value(m, "botops_restore_drill_last_success_timestamp_seconds", **series) == 1796200000
    assert value(m, "botops_integrity_check_last_run_timestamp_seconds", **series) == 1796300100
    assert value(m, "botops_integrity_check_ok", **series) == 0
    assert value(m, "botops_offsite_last_copy_timestamp_seconds", **series) == 1796300200
    size = os.stat(config["bots"][0]["databases"][0]["path"]).st_size
    assert value(m, "botops_database_size_bytes", **series) >= size
    assert value(m, "botops_bot_up", bot="samplebot") == 1
    assert value(m, "botops_bot_restarts_total", bot="samplebot") == 3
    assert value(m, "botops_bot_memory_bytes", bot="samplebot") == 52428800
    assert value(m, "botops_bot_health_ok", bot="samplebot") == 1
    assert value(m, "botops_bot_health_duration_seconds", bot="samplebot") > 0
    assert value(m, "botops_bot_release_info", bot="samplebot", release="1.1.0") == 1
    assert value(m, "botops_bot_deploy_timestamp_seconds", bot="samplebot") == 1796119200  # 2026-12-01T10:00Z
    assert value(m, "botops_bot_log_lines_total", bot="samplebot", level="ERROR") == 2
    assert value(m, "botops_bot_log_lines_total", bot="samplebot", level="CRITICAL") == 1
    assert value(m, "botops_collector_last_run_timestamp_seconds") > created - 5
    assert all(value(m, "botops_collector_errors_total", source=s) == 0 for s in ("backups", "logs", "systemd"))
    assert stat.S_IMODE(os.stat(config["state_file"]).st_mode) == 0o600

    # The bot stops, writes more errors, the health endpoint goes: the next run says so.
    (tree / "active").write_text("failed")
    with open(str(tree / "log/bot.log"), "a") as handle:
        handle.write("ERROR four\n")
    config["bots"][0]["health_url"] = "http://127.0.0.1:1/health"
    (tree / "config.json").write_text(json.dumps(config))
    collect(tree)
    m = metrics_of(tree)
    assert value(m, "botops_bot_up", bot="samplebot") == 0
    assert value(m, "botops_bot_health_ok", bot="samplebot") == 0
    assert value(m, "botops_bot_log_lines_total", bot="samplebot", level="ERROR") == 3


def test_a_corrupt_manifest_is_an_error_metric_and_the_rest_goes_on(run_module, host):
    tree, config = host
    result, _manifest = backup(run_module, config)
    other = tree / "backups/otherbot/sqlite-games"
    other.mkdir(parents=True)
    (other / "games_20261201T000000Z.db.manifest.json").write_text("{not json")
    (tree / "state/last_drill.json").write_text("[1, 2")

    done = collect(tree)
    assert "source backups failed" in done.stderr and "games_20261201T000000Z" in done.stderr
    assert "source restore_drill failed" in done.stderr
    m = metrics_of(tree)
    assert value(m, "botops_collector_errors_total", source="backups") == 1
    assert value(m, "botops_collector_errors_total", source="restore_drill") == 1
    series = dict(bot="samplebot", engine="sqlite", database="bot_data")
    assert value(m, "botops_backup_sets", **series) == 1
    assert value(m, "botops_bot_up", bot="samplebot") == 1

    # The error counts are kept across runs (a counter), and a second run adds one.
    collect(tree)
    assert value(metrics_of(tree), "botops_collector_errors_total", source="backups") == 2


def test_an_unreadable_state_is_reported_and_the_run_starts_again(host):
    tree, config = host
    (tree / "log/bot.log").write_text("ERROR one\n")
    collect(tree)
    with open(config["state_file"], "w") as handle:
        handle.write("\0garbage")
    done = collect(tree)
    assert "source state failed" in done.stderr
    m = metrics_of(tree)
    assert value(m, "botops_collector_errors_total", source="state") == 1
    # Counted again from the start of the log: a counter reset, which rate() handles.
    assert value(m, "botops_bot_log_lines_total", bot="samplebot", level="ERROR") == 1


def test_one_bot_failing_does_not_hide_another(host):
    tree, config = host
    config["bots"].append({"name": "gone", "unit": "gone.service", "logs": [], "databases": []})
    (tree / "config.json").write_text(json.dumps(config))
    done = collect(tree)
    assert "bot gone: unit gone.service is not-found" in done.stderr
    m = metrics_of(tree)
    assert value(m, "botops_bot_up", bot="samplebot") == 1
    assert value(m, "botops_bot_up", bot="gone") == 0  # down as far as anyone can tell: BotopsBotDown fires
    assert value(m, "botops_collector_errors_total", source="systemd") == 1


def test_an_unchanged_series_is_not_read_again(run_module, host):
    """The catalog cache: a manifest corrupted in place (its directory untouched) is
    not seen; once the directory changes (a new set), it is read again."""
    tree, config = host
    result, _manifest = backup(run_module, config)
    directory = os.path.dirname(result["dest"])
    # Older than the clock's granularity (a directory changed in the last 2 s is read every run).
    past = time.time() - 10
    os.utime(directory, (past, past))
    collect(tree)
    before = os.stat(directory)
    with open(result["dest"] + ".manifest.json", "r+") as handle:
        handle.write("{broken")
    os.utime(directory, ns=(before.st_atime_ns, before.st_mtime_ns))
    collect(tree)
    assert value(metrics_of(tree), "botops_collector_errors_total", source="backups") == 0
    backup(run_module, config)
    done = collect(tree)
    assert "source backups failed" in done.stderr
    m = metrics_of(tree)
    assert value(m, "botops_backup_sets", bot="samplebot", engine="sqlite", database="bot_data") == 1


def test_a_file_it_cannot_write_leaves_the_last_one_and_fails(host):
    tree, config = host
    collect(tree)
    before = (tree / "textfile/botops.prom").read_text()
    os.chmod(str(tree / "textfile"), 0o500)
    try:
        if os.geteuid() == 0:
            shutil.rmtree(str(tree / "textfile"))
            (tree / "textfile").write_text("a file where the directory was")
            done = collect(tree, expect_rc=1)
            assert "textfile" in done.stderr
        else:
            collect(tree, expect_rc=1)
            assert (tree / "textfile/botops.prom").read_text() == before
    finally:
        if (tree / "textfile").is_dir():
            os.chmod(str(tree / "textfile"), 0o755)


def test_leftovers_of_a_killed_write_are_swept(host):
    tree, config = host
    stale = tree / "textfile/botops.prom.4242.139871"
    stale.write_text("half")
    neighbour = tree / "textfile/other.prom.1.2"
    neighbour.write_text("theirs")
    collect(tree)
    assert not stale.exists() and neighbour.exists()


def test_memory_without_systemd_accounting_is_the_processes_resident_memory(host):
    """Where MemoryCurrent is "[not set]" (memory accounting not delegated, as in
    some containers), the bot's memory is its main process's VmRSS."""
    tree, config = host
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        script = tree / "systemctl"
        script.write_text("#!/bin/sh\nprintf 'LoadState=loaded\\nActiveState=active\\nNRestarts=0\\n"
                          "MemoryCurrent=[not set]\\nControlGroup=/no/such/group\\nMainPID=%d\\n'\n" % sleeper.pid)
        collect(tree)
        with open("/proc/%d/status" % sleeper.pid) as handle:
            rss = [int(line.split()[1]) * 1024 for line in handle if line.startswith("VmRSS:")][0]
        assert value(metrics_of(tree), "botops_bot_memory_bytes", bot="samplebot") == rss
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_copied_series_directory_is_not_a_second_series(run_module, host):
    tree, config = host
    result, _manifest = backup(run_module, config)
    directory = os.path.dirname(result["dest"])
    shutil.copytree(directory, directory + ".bak")
    done = collect(tree)
    assert "a copy?" in done.stderr
    text = (tree / "textfile/botops.prom").read_text()
    assert text.count('botops_backup_sets{bot="samplebot",database="bot_data",engine="sqlite"}') == 1


def test_a_log_the_bot_swapped_for_a_symlink_or_fifo_is_refused_and_the_rest_goes_on(host):
    tree, config = host
    secret = tree / "root-only"
    secret.write_text("ERROR secret\n")
    log = tree / "log/bot.log"
    log.symlink_to(secret)
    other = tree / "log/fifo.log"
    os.mkfifo(str(other))
    config["bots"][0]["logs"].append(str(other))
    (tree / "config.json").write_text(json.dumps(config))
    done = collect(tree)  # returns: a FIFO does not block the run
    assert "is a symlink" in done.stderr and "is not a regular file" in done.stderr
    m = metrics_of(tree)
    assert value(m, "botops_bot_log_lines_total", bot="samplebot", level="ERROR") == 0
    assert value(m, "botops_collector_errors_total", source="logs") == 1
    assert value(m, "botops_bot_up", bot="samplebot") == 1
    assert "secret" not in open(config["state_file"]).read()


def test_log_totals_never_go_down(host):
    """A log dropped from the list, or whose saved state is lost, never lowers the
    bot's total (Prometheus would read a reset and count everything again)."""
    tree, config = host
    second = tree / "log/second.log"
    (tree / "log/bot.log").write_text("ERROR a\nERROR b\n")
    second.write_text("ERROR c\n")
    config["bots"][0]["logs"].append(str(second))
    (tree / "config.json").write_text(json.dumps(config))
    collect(tree)
    assert value(metrics_of(tree), "botops_bot_log_lines_total", bot="samplebot", level="ERROR") == 3
    config["bots"][0]["logs"].pop()
    (tree / "config.json").write_text(json.dumps(config))
    collect(tree)
    assert value(metrics_of(tree), "botops_bot_log_lines_total", bot="samplebot", level="ERROR") == 3
    with open(config["state_file"]) as handle:
        state = json.load(handle)
    state["logs"][str(tree / "log/bot.log")] = {"offset": "garbage"}
    with open(config["state_file"], "w") as handle:
        json.dump(state, handle)
    with open(str(tree / "log/bot.log"), "a") as handle:
        handle.write("ERROR d\n")
    done = collect(tree)
    assert "malformed" in done.stderr
    # Read again from the start (3 lines), added to the total: higher, never lower.
    assert value(metrics_of(tree), "botops_bot_log_lines_total", bot="samplebot", level="ERROR") == 6


def test_a_state_section_of_the_wrong_shape_is_started_again(run_module, host):
    tree, config = host
    backup(run_module, config)
    collect(tree)
    with open(config["state_file"]) as handle:
        state = json.load(handle)
    state["catalog"], state["errors"] = [], {"backups": "many"}
    with open(config["state_file"], "w") as handle:
        json.dump(state, handle)
    done = collect(tree)
    assert "section 'catalog' is not a dict" in done.stderr
    collect(tree)
    m = metrics_of(tree)
    assert value(m, "botops_backup_sets", bot="samplebot", engine="sqlite", database="bot_data") == 1
    assert value(m, "botops_collector_errors_total", source="backups") == 0


def test_a_health_endpoint_that_is_not_http_is_unhealthy_not_an_error(host):
    import socket
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)

    def answer():
        for _round in range(2):
            conn, _addr = server.accept()
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            conn.close()
    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    tree, config = host
    config["bots"][0]["health_url"] = "http://127.0.0.1:%d/health" % server.getsockname()[1]
    config["bots"].append(dict(config["bots"][0], name="second", logs=[], databases=[]))
    (tree / "config.json").write_text(json.dumps(config))
    collect(tree)
    m = metrics_of(tree)
    assert value(m, "botops_bot_health_ok", bot="samplebot") == 0
    assert value(m, "botops_bot_health_ok", bot="second") == 0
    assert value(m, "botops_collector_errors_total", source="health") == 0
    server.close()
