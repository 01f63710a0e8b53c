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


def test_read_names_what_each_release_replaced(run_module, tmp_path):
    ledger = str(tmp_path / "ledger.jsonl")
    for fields in (entry(id="1", release="1.0.0"),
                   entry(id="2", release="1.1.0", previous_release="1.0.0", backup="/b/one.db"),
                   entry(id="3", kind="rollback", release="1.0.0", previous_release="1.1.0"),
                   entry(id="4", release="1.2.0", previous_release="1.0.0", outcome="rolled_back")):
        run_module(deploy_ledger, dict(path=ledger, state="present", entry=fields))
    result = run_module(deploy_ledger, dict(path=ledger))
    # A rollback is not a deploy: 1.0.0 still replaced nothing; a failed deploy replaced nothing.
    assert result["replaced"] == {"1.0.0": None, "1.1.0": "1.0.0"}


def release(root, name, finished=True, mtime=None):
    directory = root / "releases" / name
    directory.mkdir(parents=True)
    if finished:
        (directory / ".botops-release.json").write_text("{}\n")
    if mtime is not None:
        os.utime(directory, (mtime, mtime))
    return directory


def test_root_reads_the_layout_the_live_release_and_the_finished_releases(run_module, tmp_path):
    root = tmp_path / "bot"
    release(root, "1.1.0", mtime=2000)
    release(root, "1.0.0", mtime=1000)
    release(root, "1.2.0", finished=False, mtime=3000)  # a killed build: not a release
    (root / "current").symlink_to("releases/1.1.0")
    run_module(deploy_ledger, dict(root=str(root), state="present", entry=entry(id="a", release="1.1.0")))

    result = run_module(deploy_ledger, dict(root=str(root) + "/"))
    assert not result["changed"]
    assert result["paths"] == {
        "root": str(root), "releases": str(root / "releases"), "shared": str(root / "shared"),
        "current": str(root / "current"), "ledger": str(root / "ledger.jsonl"), "safety": str(root / "safety"),
        "release_marker": ".botops-release.json"}
    assert result["live_release"] == "1.1.0"
    assert result["releases"] == ["1.0.0", "1.1.0"]
    assert [e["id"] for e in result["entries"]] == ["a"]
    assert (root / "ledger.jsonl").exists()


def test_root_before_a_first_deploy_reads_as_nothing_and_writes_nothing(run_module, tmp_path):
    root = tmp_path / "bot"
    result = run_module(deploy_ledger, dict(root=str(root)))
    assert not result["changed"]
    assert (result["live_release"], result["releases"], result["entries"], result["last_good_release"]) == ("", [], [], None)
    assert result["paths"]["ledger"] == str(root / "ledger.jsonl")
    assert not root.exists()

    recorded = run_module(deploy_ledger, dict(root=str(root), state="present", entry=entry(id="a")))
    assert recorded["failed"] and "directory does not exist" in recorded["msg"]


def test_a_current_that_is_not_a_link_is_no_live_release(run_module, tmp_path):
    root = tmp_path / "bot"
    (root / "current").mkdir(parents=True)
    assert run_module(deploy_ledger, dict(root=str(root)))["live_release"] == ""


def test_path_and_root_exclude_each_other(run_module, tmp_path):
    both = run_module(deploy_ledger, dict(path=str(tmp_path / "ledger.jsonl"), root=str(tmp_path)))
    assert both["failed"] and "mutually exclusive" in both["msg"]
    neither = run_module(deploy_ledger, dict())
    assert neither["failed"] and "one of the following is required" in neither["msg"]
