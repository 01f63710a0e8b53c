# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scenario's hosts are real systemd hosts that reach each other by name and
run sshd, and the sample bot runs on both engines."""

# Inspected through podman exec; the playbooks under test reach the hosts over ssh.
testinfra_hosts = ["podman://pb-bot1", "podman://pb-db1"]

PEERS = {"pb-bot1": "pb-db1", "pb-db1": "pb-bot1"}


def test_systemd_is_pid_1_and_running(host):
    assert host.process.get(pid=1).comm == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state == "running", host.run("systemctl --failed --no-legend").stdout


def test_hosts_resolve_each_other_by_name(host):
    peer = PEERS[host.backend.get_hostname()]
    address = host.run("getent hosts %s" % peer)
    assert address.rc == 0 and address.stdout.split()[0]


def test_sshd_listens(host):
    assert host.service("ssh").is_running
    assert host.socket("tcp://0.0.0.0:22").is_listening


def test_the_bot_answers_and_its_deployment_is_published(host):
    assert '"status": "ok"' in host.check_output("curl -s http://127.0.0.1:8080/health")
    published = host.file("/etc/botops/bots.d/samplebot.json")
    assert published.mode == 0o600 and published.user == "root"
