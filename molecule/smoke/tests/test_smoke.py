# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The smoke scenario's hosts are real systemd hosts that reach each other by name."""

import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")

DB = "/srv/samplebot/shared/data/bot_data.db"
PEERS = {"smoke-bot1": "smoke-db1", "smoke-db1": "smoke-bot1"}


def test_systemd_is_pid_1_and_running(host):
    assert host.process.get(pid=1).comm == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state == "running", host.run("systemctl --failed --no-legend").stdout


def test_hosts_resolve_each_other_by_name(host):
    peer = PEERS[host.backend.get_hostname()]
    address = host.run("getent hosts %s" % peer)
    assert address.rc == 0 and address.stdout.split()[0]


def test_bot_host_database_is_healthy(host):
    if host.backend.get_hostname() != "smoke-bot1":
        return
    db = host.file(DB)
    assert db.is_file and db.size > 0
    probe = host.run("python3 -c 'import json,sqlite3; c=sqlite3.connect(\"file:%s?mode=ro\", uri=True); "
                     "print(json.dumps([c.execute(\"PRAGMA integrity_check\").fetchone()[0], "
                     "c.execute(\"SELECT count(*) FROM messages\").fetchone()[0]]))'" % DB)
    assert json.loads(probe.stdout) == ["ok", 5000]


def test_database_host_runs_postgresql(host):
    if host.backend.get_hostname() != "smoke-db1":
        return
    assert host.service("postgresql@15-main").is_running
    assert host.socket("tcp://127.0.0.1:5432").is_listening
