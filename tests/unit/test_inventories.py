# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shipped inventories parse, group the bots by engine, reach them over ssh, and
say each bot's settings once; every playbook parses against them."""

import json
import os
import subprocess

import pytest
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLAYBOOKS = sorted(n for n in os.listdir(os.path.join(REPO, "playbooks")) if n.endswith(".yml") and not n.startswith("_"))


def inventory(name):
    done = subprocess.run(["ansible-inventory", "-i", os.path.join(REPO, "inventories", name), "--list"],
                          capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(done.stdout)


def test_the_example_inventory_has_the_five_runbook_bots_by_engine():
    data = inventory("example")
    assert sorted(data["sqlite_bots"]["hosts"]) == ["basketball-blitz", "reload-bot"]
    assert sorted(data["postgresql_bots"]["hosts"]) == ["clip-saver", "psychochauffeur", "reminder-bot"]
    assert set(data["bots"]["children"]) == {"sqlite_bots", "postgresql_bots"}
    hostvars = data["_meta"]["hostvars"]
    for host in data["sqlite_bots"]["hosts"] + data["postgresql_bots"]["hosts"]:
        assert hostvars[host].get("ansible_connection", "ssh") == "ssh" and hostvars[host]["ansible_host"]
        assert hostvars[host]["deploy_bot_name"] == hostvars[host]["botops_bot_name"] == host


def test_a_setting_is_said_once_per_inventory_level():
    # No host file repeats what its group says with the same value.
    folder = os.path.join(REPO, "inventories", "example")
    groups = {}
    for name in os.listdir(os.path.join(folder, "group_vars")):
        groups.update(yaml.safe_load(open(os.path.join(folder, "group_vars", name), encoding="utf-8")) or {})
    for name in os.listdir(os.path.join(folder, "host_vars")):
        host = yaml.safe_load(open(os.path.join(folder, "host_vars", name), encoding="utf-8")) or {}
        assert not {k for k, v in host.items() if groups.get(k) == v}, name


def test_the_demo_inventory_reaches_its_hosts_over_ssh_with_both_engines():
    data = inventory("demo")
    assert data["sqlite_bots"]["hosts"] == ["demo-bot1"] and data["postgresql_bots"]["hosts"] == ["demo-db1"]
    for host, address in (("demo-bot1", "10.123.1.11"), ("demo-db1", "10.123.1.12")):
        hostvars = data["_meta"]["hostvars"][host]
        assert hostvars["ansible_host"] == address and "ansible_connection" not in hostvars


@pytest.mark.parametrize("name", ["example", "demo"])
def test_every_playbook_parses_against_the_inventory(name):
    done = subprocess.run(["ansible-playbook", "--syntax-check", "-i", os.path.join(REPO, "inventories", name)]
                          + [os.path.join(REPO, "playbooks", p) for p in PLAYBOOKS],
                          capture_output=True, text=True, check=False, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
