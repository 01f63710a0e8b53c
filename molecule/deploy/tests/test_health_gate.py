# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health gate reads the bot's log as the bot: side_effect.yml pointed the log of
deploy-bot2 at a root-only file whose content would satisfy the gate."""

import json
import os

RECORD = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "record")


def test_the_gate_never_reads_a_root_only_file_through_the_bots_log():
    path = os.path.join(RECORD, "runs", "health_symlink.json")
    assert os.path.exists(path), "side_effect.yml did not record the health gate over a symlinked log"
    with open(path, encoding="utf-8") as f:
        text = f.read()
    record = json.loads(text)
    # Read as root, the file's "Bot is ready" would have passed the gate.
    assert record["outcome"] == "failed", record
    assert record["task"].startswith("Wait for the log to say"), record
    assert "Permission denied" in record["result"].get("stderr", ""), record
    assert "ROOT-ONLY-SECRET" not in text
