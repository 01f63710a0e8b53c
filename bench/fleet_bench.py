#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark the scheduled playbooks on a fleet: backup.yml and check.yml on 1 and on
8 systemd test hosts over ssh (the project's ansible.cfg: pipelining, ControlPersist),
each host with a small SQLite bot database, in one run.

    make bench                                  # writes bench/results/fleet.md
    python bench/fleet_bench.py --hosts 8 --out /tmp/fleet.md

Targets: 8 hosts in at most 3x the time of 1 host, and at most 0.1 s of controller
CPU (user + system of ansible-playbook and its children) per host-task, where a
host-task is one task on one host (ok + skipped + failed of the recap). Each
playbook runs once untimed first on the hosts (ssh connections, host keys), then
timed. The hosts are podman containers of localhost/botops-host:12.
"""

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
IMAGE = "localhost/botops-host:12"
NETWORK = "botops-bench"
DB = "/srv/benchbot/shared/data/bot_data.db"


def run(argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


def boot(names, key):
    if subprocess.run(["podman", "network", "exists", NETWORK], check=False).returncode != 0:
        run(["podman", "network", "create", NETWORK])
    for name in names:
        subprocess.run(["podman", "rm", "-f", name], capture_output=True, check=False)
        run(["podman", "run", "-d", "--name", name, "--hostname", name, "--network", NETWORK, "--systemd=always",
             "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768", IMAGE])
    address = {}
    for name in names:
        subprocess.run(["podman", "exec", name, "systemctl", "is-system-running", "--wait"], capture_output=True, check=False)
        with open(key + ".pub", encoding="utf-8") as handle:
            subprocess.run(["podman", "exec", "-i", name, "sh", "-c",
                            "umask 077; mkdir -p /root/.ssh; cat > /root/.ssh/authorized_keys"],
                           input=handle.read(), text=True, check=True)
        seed = ("mkdir -p %s && python3 -c \"import sqlite3; c=sqlite3.connect('%s'); "
                "c.execute('create table if not exists messages(id integer primary key, body text)'); "
                "c.executemany('insert into messages(body) values (?)', [('hello %%d' %% i,) for i in range(2000)]); "
                "c.commit()\" && chmod 0600 %s" % (os.path.dirname(DB), DB, DB))
        run(["podman", "exec", name, "sh", "-c", seed])
        address[name] = run(["podman", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                             name]).stdout.strip()
    return address


def inventory(work, address, names, key):
    hosts = {name: {"ansible_host": address[name]} for name in names}
    data = {"all": {"vars": {
        "ansible_user": "root", "ansible_python_interpreter": "/usr/bin/python3", "ansible_ssh_private_key_file": key,
        "ansible_ssh_common_args": "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=accept-new" % os.path.join(work, "known_hosts"),
        "botops_bot_name": "benchbot", "botops_databases": [{"path": DB}]},
        "children": {"bots": {"hosts": hosts}}}}
    path = os.path.join(work, "hosts-%d.yml" % len(names))
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(data, handle)
    return path


def timed(playbook, inventory_path, extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_FORCE_COLOR="false")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    done = subprocess.run(["ansible-playbook", "-i", inventory_path, os.path.join(REPO, "playbooks", playbook)] + extra,
                          capture_output=True, text=True, check=False, env=env, cwd=REPO)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit("%s failed:\n%s" % (playbook, done.stdout[-4000:]))
    tasks = sum(int(ok) + int(skipped) + int(failed) for ok, failed, skipped in re.findall(
        r"^\S+\s+: ok=(\d+)\s+changed=\d+\s+unreachable=\d+\s+failed=(\d+)\s+skipped=(\d+)", done.stdout, re.MULTILINE))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, tasks


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "fleet.md"))
    args = parser.parse_args()
    key = run([os.path.join(REPO, "scripts", "setup.sh"), "ssh-key-path"]).stdout.strip()
    run([os.path.join(REPO, "scripts", "setup.sh"), "ssh-key"])
    names = ["bench-host%d" % i for i in range(1, args.hosts + 1)]
    work = tempfile.mkdtemp(prefix="botops-fleet-")
    try:
        address = boot(names, key)
        rows = []
        for playbook, extra in (("backup.yml", ["-e", "backup_collect=false"]), ("check.yml", ["-e", "check_collect=false"])):
            results = {}
            for count in (1, args.hosts):
                path = inventory(work, address, names[:count], key)
                timed(playbook, path, extra)  # warm: connections, host keys
                results[count] = timed(playbook, path, extra)
            (w1, c1, t1), (wn, cn, tn) = results[1], results[args.hosts]
            rows.append((playbook, w1, wn, wn / w1, c1 / t1, cn / tn, t1, tn))
        lines = ["# Fleet: the scheduled playbooks on 1 and %d hosts over ssh" % args.hosts, "",
                 "`python bench/fleet_bench.py --hosts %d` (part of `make bench`), %s, on %d cores; the hosts are "
                 "podman containers on this machine, so they share its cores with the controller." % (
                     args.hosts, time.strftime("%Y-%m-%d"), os.cpu_count()), "",
                 "| playbook | 1 host | %d hosts | ratio (target <= 3) | CPU per host-task, 1 host "
                 "| CPU per host-task, %d hosts (target <= 0.1 s) | host-tasks 1 / %d |" % (args.hosts, args.hosts, args.hosts),
                 "|---|---|---|---|---|---|---|"]
        for playbook, w1, wn, ratio, cpt1, cptn, t1, tn in rows:
            lines.append("| %s | %.1f s | %.1f s | %.2f | %.3f s | %.3f s | %d / %d |" % (playbook, w1, wn, ratio, cpt1, cptn, t1, tn))
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        print("\n".join(lines))
    finally:
        subprocess.run(["podman", "rm", "-f"] + names, capture_output=True, check=False)
        subprocess.run(["podman", "network", "rm", NETWORK], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
