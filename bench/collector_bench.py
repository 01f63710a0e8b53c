#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark botops-collect (roles/monitoring/files) on a big bot host: 1,000
backup sets in 20 series and a 1 GiB bot log.

    make bench                              # writes bench/results/collector.md
    python bench/collector_bench.py --sets 1000 --log-mb 1024 --out /tmp/collector.md

The target: a steady run (one new set, a few hundred new log lines since the last
run) takes under 1 s of CPU. The runs are measured in one go, as CPU seconds
(user + system of the child), against two baselines on the same machine: the
floor (Debian's python3 starting and importing prometheus_client and the catalog
code, doing nothing) and the first run (no saved state: every manifest and the
whole log read once). The collector runs as on a host: Debian's python3, its own
process.
"""

import argparse
import atexit
import datetime
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
COLLECTOR = os.path.join(REPO, "roles", "monitoring", "files", "botops_collect.py")
WORK = os.path.join(HERE, "work", "collector")
PYTHON = "/usr/bin/python3"


_ROOT = []


def collections_root():
    """A private ansible_collections/botops/runbook -> this tree, outside it (a link
    inside would make every tool that walks the tree walk it again)."""
    if not _ROOT:
        _ROOT.append(tempfile.mkdtemp(prefix="botops-bench-collections-"))
        atexit.register(shutil.rmtree, _ROOT[0], True)
        link = os.path.join(_ROOT[0], "ansible_collections", "botops", "runbook")
        os.makedirs(os.path.dirname(link))
        os.symlink(REPO, link)
    return _ROOT[0]


def make_sets(backup_root, count, series=20):
    sys.path.insert(0, collections_root())
    from ansible_collections.botops.runbook.plugins.module_utils._manifest import (  # noqa: E402
        backup_name, manifest_path, new_manifest, write_manifest)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    for index in range(count):
        bot, database = "bot%02d" % (index % series // 4), "db%d" % (index % series % 4)
        directory = os.path.join(backup_root, bot, "sqlite-" + database)
        os.makedirs(directory, exist_ok=True)
        created = now - datetime.timedelta(hours=index // series + 1)
        path = os.path.join(directory, backup_name(database, created, ".db", "none"))
        data = ("%s %d" % (database, index)).encode() * 64
        with open(path, "wb") as handle:
            handle.write(data)
        manifest = new_manifest("sqlite", database, created, bot=bot)
        manifest.update(files=[{"name": os.path.basename(path), "size": len(data),
                                "sha256": hashlib.sha256(data).hexdigest()}],
                        verified={"method": "integrity_check", "ok": True, "at": manifest["created_at"]})
        write_manifest(manifest_path(path), manifest)


def make_log(path, megabytes):
    if os.path.exists(path) and os.path.getsize(path) >= megabytes * 1024 * 1024:
        return
    lines = []
    for index in range(10000):
        level = "ERROR" if index % 97 == 0 else ("CRITICAL" if index % 991 == 0 else "INFO")
        lines.append("2026-12-03 14:00:%02d,123 %s samplebot: event %d handled for guild 12345 in 3 ms" % (
            index % 60, level, index))
    block = ("\n".join(lines) + "\n").encode()
    with open(path, "wb") as handle:
        while handle.tell() < megabytes * 1024 * 1024:
            handle.write(block)


def cpu_of(argv, env):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit("%s failed: %s" % (argv, done.stderr))
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--sets", type=int, default=1000)
    parser.add_argument("--log-mb", type=int, default=1024)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "collector.md"))
    args = parser.parse_args()

    host = os.path.join(WORK, "host")
    shutil.rmtree(os.path.join(host, "backups"), ignore_errors=True)
    shutil.rmtree(os.path.join(host, "collect"), ignore_errors=True)
    for sub in ("backups", "state", "textfile", "logs"):
        os.makedirs(os.path.join(host, sub), exist_ok=True)
    make_sets(os.path.join(host, "backups"), args.sets)
    log = os.path.join(host, "logs", "bot.log")
    make_log(log, args.log_mb)
    config = {"textfile": os.path.join(host, "textfile", "botops.prom"),
              "state_file": os.path.join(host, "collect", "state.json"), "state_dir": os.path.join(host, "state"),
              "backup_root": os.path.join(host, "backups"), "systemctl": "/bin/true",
              "bots": [{"name": "bot00", "logs": [log], "databases": []}]}
    config_file = os.path.join(host, "config.json")
    with open(config_file, "w") as handle:
        json.dump(config, handle)
    env = dict(os.environ, PYTHONPATH=collections_root())
    run = [PYTHON, COLLECTOR, "--config", config_file]

    floor = min(cpu_of([PYTHON, "-c", "import sys; sys.path[:0] = [%r, %r]; import botops_collect" % (
        os.path.dirname(COLLECTOR), collections_root())], env)[0] for _round in range(3))
    # The first runs read the backlog: every manifest, and the log up to its end
    # (at most botops_logcount.MAX_READ bytes a run, so a first run stays bounded).
    first_cpu, first_wall, first_runs = 0.0, 0.0, 0
    while True:
        cpu, wall = cpu_of(run, env)
        first_cpu, first_wall, first_runs = first_cpu + cpu, first_wall + wall, first_runs + 1
        with open(config["state_file"]) as handle:
            if json.load(handle)["logs"][log]["offset"] >= os.path.getsize(log):
                break
    first = (first_cpu, first_wall)
    steady = []
    for round_ in range(5):
        with open(log, "a") as handle:
            for index in range(300):
                handle.write("2026-12-03 15:00:00,000 %s samplebot: steady %d %d\n" % (
                    "ERROR" if index % 10 == 0 else "INFO", round_, index))
        make_sets(os.path.join(WORK, "host", "backups"), 1)
        steady.append(cpu_of(run, env))
    with open(config["textfile"]) as handle:
        text = handle.read()
    expected_errors = None
    for line in text.splitlines():
        if line.startswith('botops_bot_log_lines_total{bot="bot00",level="ERROR"}'):
            expected_errors = float(line.split()[-1])
    best = min(cpu for cpu, _wall in steady)
    worst = max(cpu for cpu, _wall in steady)
    lines = [
        "# botops-collect on a big host",
        "",
        "%d backup sets in 20 series, a %d MiB log; Debian's python3 (`%s`)." % (args.sets, args.log_mb, " ".join(
            ["python", "bench/collector_bench.py", "--sets", str(args.sets), "--log-mb", str(args.log_mb)])),
        "",
        "| run | CPU s | wall s | ratio to the floor |",
        "|---|---|---|---|",
        "| floor: start and import, nothing read | %.3f | | 1.0 |" % floor,
        "| first runs (%d, at most 256 MiB of log each): no state, every manifest and the whole log | %.3f | %.3f | %.1f |"
        % (first_runs, first[0], first[1], first[0] / floor),
        "| steady run (300 new log lines, 1 new set), worst of 5 | %.3f | %.3f | %.1f |" % (
            worst, max(w for _c, w in steady), worst / floor),
        "| steady run, best of 5 | %.3f | | %.1f |" % (best, best / floor),
        "",
        "Target: a steady run under 1 s of CPU: %s (worst %.3f s). ERROR lines counted: %d." % (
            "met" if worst < 1.0 else "NOT MET", worst, expected_errors or 0),
    ]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if worst < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
