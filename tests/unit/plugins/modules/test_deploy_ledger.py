# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""deploy_ledger: append, update by id, atomic rewrite, and what the roles read from it."""

import json
import os

from ansible_collections.botops.runbook.plugins.modules import deploy_ledger


def entry(**fields):
    return dict({"kind": "deploy", "outcome": "success"}, **fields)


def test_record_check_mode_then_real_then_repeat(run_module, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    args = dict(path=str(ledger), state="present", entry=entry(id="a", release="1.0.0"))

    checked = run_module(deploy_ledger, args, check_mode=True, diff=True)
    assert checked["changed"] and not ledger.exists()
    assert '"release": "1.0.0"' in checked["diff"]["after"]

    assert run_module(deploy_ledger, args)["changed"]
    assert oct(os.stat(ledger).st_mode & 0o777) == "0o640"
    assert not run_module(deploy_ledger, args)["changed"]
    assert [json.loads(line)["id"] for line in ledger.read_text().splitlines()] == ["a"]


def test_update_merges_into_the_entry_with_the_same_id(run_module, tmp_path):
    ledger = str(tmp_path / "ledger.jsonl")
    run_module(deploy_ledger, dict(path=ledger, state="present", entry=entry(id="a", release="1.0.0", outcome="in_progress")))
    result = run_module(deploy_ledger, dict(path=ledger, state="present", entry=dict(id="a", outcome="failed")))
    assert result["changed"]
    assert result["entries"] == [dict(id="a", kind="deploy", release="1.0.0", outcome="failed")]


def test_read_summarizes_good_releases_and_what_each_left_behind(run_module, tmp_path):
    ledger = str(tmp_path / "ledger.jsonl")
    for fields in (entry(id="1", release="1.0.0"),
                   entry(id="2", release="1.1.0", previous_release="1.0.0", backup="/b/one.db"),
                   entry(id="3", release="1.2.0", previous_release="1.1.0", backup="/b/two.db", outcome="rolled_back"),
                   entry(id="4", kind="rollback", release="1.0.0", previous_release="1.1.0", backup="/b/three.db")):
        run_module(deploy_ledger, dict(path=ledger, state="present", entry=fields))
    result = run_module(deploy_ledger, dict(path=ledger))
    assert not result["changed"]
    assert result["good_releases"] == ["1.1.0", "1.0.0"]
    assert result["last_good_release"] == "1.0.0"
    assert result["left_behind"]["1.0.0"]["backup"] == "/b/one.db"
    assert result["left_behind"]["1.1.0"]["backup"] == "/b/three.db"  # a failed deploy leaves nothing
    assert "1.2.0" not in result["left_behind"]


def test_a_missing_ledger_reads_as_empty(run_module, tmp_path):
    result = run_module(deploy_ledger, dict(path=str(tmp_path / "ledger.jsonl")))
    assert result["entries"] == [] and result["last_good_release"] is None


def test_a_damaged_line_is_named_and_nothing_is_written(run_module, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text('{"id": "a"}\n{not json\n')
    result = run_module(deploy_ledger, dict(path=str(ledger), state="present", entry=dict(id="b")))
    assert result["failed"]
    assert "ledger.jsonl" in result["msg"] and "line 2 is not JSON" in result["msg"]
    assert ledger.read_text() == '{"id": "a"}\n{not json\n'


def test_a_missing_directory_is_a_clear_error(run_module, tmp_path):
    result = run_module(deploy_ledger, dict(path=str(tmp_path / "nope" / "ledger.jsonl"), state="present", entry=dict(id="a")))
    assert result["failed"] and "directory does not exist" in result["msg"]


def test_an_entry_without_id_is_refused(run_module, tmp_path):
    result = run_module(deploy_ledger, dict(path=str(tmp_path / "ledger.jsonl"), state="present", entry=dict(release="1")))
    assert result["failed"] and "no id" in result["msg"]
