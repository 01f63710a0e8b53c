# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Grafana dashboard asks only for metrics the collector writes, and shows the
ones the issue names (backup age per database, drills, bot up/memory/errors, size)."""

import ast
import json
import os
import re

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FILES = os.path.join(REPO, "roles", "monitoring", "files")


def collector_metrics():
    """The METRICS names of botops_collect.py, read without importing it."""
    with open(os.path.join(FILES, "botops_collect.py")) as handle:
        tree = ast.parse(handle.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "METRICS":
            return {key.value for key in node.value.keys}
    raise AssertionError("no METRICS in botops_collect.py")


def test_the_dashboard_references_only_metrics_that_exist():
    with open(os.path.join(FILES, "grafana-dashboard.json")) as handle:
        dashboard = json.load(handle)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = {name for expr in exprs for name in re.findall(r"\b(botops_[a-z_]+)", expr)}
    assert used and used <= collector_metrics(), used - collector_metrics()
    assert {"botops_backup_last_success_timestamp_seconds", "botops_restore_drill_last_success_timestamp_seconds",
            "botops_bot_up", "botops_bot_memory_bytes", "botops_bot_log_lines_total",
            "botops_database_size_bytes"} <= used
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
