# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""deploy_info reads what the deploy role published, and names every file it cannot use."""

import json

from ansible_collections.botops.runbook.plugins.modules import deploy_info

BOT = {"bot": "samplebot", "root": "/srv/samplebot", "unit": "samplebot.service", "env_file": "/srv/samplebot/shared/.env",
       "databases": [{"engine": "sqlite", "path": "/srv/samplebot/shared/data/bot_data.db", "bot": "samplebot"}]}


def test_a_missing_directory_is_no_deployed_bot(run_module, tmp_path):
    result = run_module(deploy_info, {"path": str(tmp_path / "none")})
    assert not result.get("failed") and result["bots"] == [] and result["databases"] == [] and result["problems"] == []


def test_bots_and_their_databases_are_read_sorted(run_module, tmp_path):
    (tmp_path / "zbot.json").write_text(json.dumps(dict(BOT, bot="zbot", databases=[{"engine": "postgresql", "db": "z"}])))
    (tmp_path / "samplebot.json").write_text(json.dumps(BOT))
    (tmp_path / ".hidden.json").write_text("{")
    (tmp_path / "notes.txt").write_text("x")
    for check_mode in (True, False):
        result = run_module(deploy_info, {"path": str(tmp_path)}, check_mode=check_mode)
        assert not result["changed"]
        assert [b["bot"] for b in result["bots"]] == ["samplebot", "zbot"]
        assert result["databases"] == BOT["databases"] + [{"engine": "postgresql", "db": "z"}]


def test_a_broken_file_is_a_named_problem_and_the_others_are_read(run_module, tmp_path):
    (tmp_path / "broken.json").write_text('{"bot": ')
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "samplebot.json").write_text(json.dumps(BOT))
    result = run_module(deploy_info, {"path": str(tmp_path)})
    assert [b["bot"] for b in result["bots"]] == ["samplebot"]
    assert len(result["problems"]) == 2
    assert any("broken.json" in p and "cannot read" in p for p in result["problems"])
    assert any("list.json is not a bot's description" in p for p in result["problems"])
