# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup host holds verified copies of the bot host's sets, per bot and database."""

import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")

TREE = "/var/backups/botops-offsite/samplebot/sqlite-bot_data"
LOCAL = "/var/backups/botops/samplebot/sqlite-bot_data"


def test_the_newest_set_arrived_matches_its_manifest_and_retention_applied(host):
    if host.backend.get_hostname() != "offsite-vault1":
        return
    names = host.run("ls %s" % TREE).stdout.split()
    manifests = [n for n in names if n.endswith(".manifest.json")]
    assert len(manifests) == 1 and len(names) == 2, "keep_last: 1 on the backup host"
    for name in manifests:
        manifest = json.loads(host.file("%s/%s" % (TREE, name)).content_string)
        data = manifest["files"][0]
        assert host.file("%s/%s" % (TREE, data["name"])).sha256sum == data["sha256"]
        assert host.file("%s/%s" % (TREE, data["name"])).mode == 0o600
        assert manifest["bot"] == "samplebot"


def test_local_backups_are_untouched(host):
    if host.backend.get_hostname() != "offsite-bot1":
        return
    names = host.run("ls %s" % LOCAL).stdout.split()
    assert len([n for n in names if n.endswith(".manifest.json")]) == 2
