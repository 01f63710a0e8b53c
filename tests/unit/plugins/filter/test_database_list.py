# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filters of the backup and check roles: a host's database list, check verdicts,
the security findings (every file mode), the last_check.json record."""

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import given, strategies as st

from ansible_collections.botops.runbook.plugins.filter.database_list import (
    check_record, check_verdicts, database_list, security_findings)


def test_engines_are_inferred_and_labels_are_the_series_ids():
    out = database_list([{"path": "/srv/b/shared/data/bot_data.db"}, {"db": "clips", "login_host": "db1", "bot": "clipsaver"}], "b")
    assert [(e["engine"], e["bot"], e["name"], e["label"]) for e in out] == [
        ("sqlite", "b", "bot_data", "b/sqlite-bot_data"), ("postgresql", "clipsaver", "clips", "clipsaver/postgresql-clips")]


def test_a_deployed_database_already_listed_is_not_backed_up_twice():
    listed = [{"path": "/srv/b/shared/data//bot_data.db"}]
    deployed = [{"engine": "sqlite", "path": "/srv/b/shared/data/bot_data.db", "bot": "b"},
                {"engine": "postgresql", "db": "b", "login_host": "127.0.0.1", "login_port": 5432}]
    out = database_list(listed, "b", deployed)
    assert [e["label"] for e in out] == ["b/sqlite-bot_data", "b/postgresql-b"]


def test_the_same_database_on_two_servers_is_two_series_when_each_has_its_bot():
    out = database_list([{"db": "x", "login_host": "a"}, {"db": "x", "login_host": "b", "bot": "c"},
                         {"db": "x", "login_host": "a"}], "b")
    assert [e["label"] for e in out] == ["b/postgresql-x", "c/postgresql-x"]
    with pytest.raises(AnsibleFilterError, match="both make the backup series b/postgresql-x"):
        database_list([{"db": "x", "login_host": "a"}, {"db": "x", "login_host": "b"}], "b")


@pytest.mark.parametrize("entry, why", [
    ({"path": "relative.db"}, "absolute file name"),
    ({"path": "/srv/data/"}, "absolute file name"),
    ({"path": "/a.db", "db": "x"}, "no db or login_"),
    ({"path": "/a.db", "login_password": "pw"}, "no db or login_"),
    ({"engine": "postgresql"}, "needs db"),
    ({"engine": "postgresql", "db": "x", "path": "/a"}, "not path"),
    ({"engine": "mysql", "db": "x"}, "engine must be sqlite or postgresql"),
    ({}, "engine must be sqlite or postgresql"),
    ("/srv/a.db", "is not a mapping"),
])
def test_a_malformed_entry_fails_naming_it_and_what_it_should_be(entry, why):
    with pytest.raises(AnsibleFilterError, match=why):
        database_list([entry], "b")


def test_a_password_is_masked_in_the_error():
    with pytest.raises(AnsibleFilterError) as caught:
        database_list([{"engine": "postgresql", "login_password": "s3cret"}], "b")
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("blank", [None, "", "  "])
def test_no_list_is_an_empty_list(blank):
    assert database_list(blank, "b") == []


@given(st.lists(st.dictionaries(st.sampled_from(["engine", "path", "db", "login_host", "login_port", "bot", "x"]),
                                st.one_of(st.none(), st.text(max_size=12), st.integers()), max_size=5), max_size=4))
def test_any_input_is_a_list_of_series_or_a_clear_error(entries):
    try:
        out = database_list(entries, "b")
    except AnsibleFilterError as exc:
        assert "database entry" in str(exc)
        return
    assert len({e["label"] for e in out}) <= len(out) <= len(entries)
    for entry in out:
        assert entry["engine"] in ("sqlite", "postgresql") and entry["label"].startswith(entry["bot"] + "/" + entry["engine"] + "-")


def stat(path, mode, isdir=False, exists=True):
    return {"item": path, "stat": {"exists": exists, "mode": "%04o" % mode, "isdir": isdir}}


@pytest.mark.parametrize("mode", range(0o1000))
def test_a_file_is_flagged_exactly_when_others_can_read_or_write_it(mode):
    found = security_findings([stat("/srv/b/shared/.env", mode)], {"files": []}, [], 5.0)
    assert bool(found) == bool(mode & 0o006)
    found = security_findings([], {"files": [{"path": "/var/backups/botops/b/x.db.zst", "mode": "%04o" % mode, "isdir": False}]}, [], 5.0)
    assert bool(found) == bool(mode & 0o006)


def test_a_symlink_in_the_backup_tree_is_named():
    found = security_findings([], {"files": [{"path": "/var/backups/botops/b/x.db", "mode": "0777", "islnk": True}]}, [], 5.0)
    assert found == ["the backup tree holds a symlink, /var/backups/botops/b/x.db: backup sets are plain files; "
                     "remove it (rm /var/backups/botops/b/x.db)"]


def test_two_databases_in_one_series_are_refused_naming_both():
    with pytest.raises(AnsibleFilterError, match="both make the backup series b/sqlite-bot_data"):
        database_list([{"path": "/srv/b/shared/data/bot_data.db"}, {"path": "/srv/b/shared/old/bot_data.sqlite"}], "b")
    with pytest.raises(AnsibleFilterError, match="both make the backup series b/postgresql-x"):
        database_list([{"db": "x"}], "b", [{"db": "x", "login_host": "127.0.0.1", "login_port": 5432}])
    # One database listed under two bots is still one database: backed up once.
    assert len(database_list([{"db": "x"}, {"db": "x", "bot": "other"}], "b")) == 1


def test_public_entries_carry_no_password():
    from ansible_collections.botops.runbook.plugins.filter.database_list import public_entries
    out = public_entries(database_list([{"db": "x", "login_password": "s3cret"}], "b"))
    assert "s3cret" not in repr(out) and out[0]["label"] == "b/postgresql-x"


@pytest.mark.parametrize("mode", range(0o1000))
def test_a_backup_directory_is_flagged_exactly_when_it_is_not_0700_or_stricter(mode):
    found = security_findings([stat("/var/backups/botops", mode, isdir=True)],
                              {"files": [{"path": "/var/backups/botops/b", "mode": "%04o" % mode, "isdir": True}]}, [], 5.0)
    assert len(found) == (2 if mode & 0o077 else 0)
    assert all("chmod 0700" in line for line in found)


def test_a_missing_file_is_not_a_finding():
    assert security_findings([stat("/nope", 0o644, exists=False)], {}, [], 5.0) == []


def analysis(unit, exposure=None, rc=0, stderr=""):
    out = "  NAME  DESCRIPTION  EXPOSURE\n\u2192 Overall exposure level for %s: %s OK :-)\n" % (unit, exposure) if exposure is not None else ""
    return {"item": unit, "rc": rc, "stdout": out, "stderr": stderr}


@pytest.mark.parametrize("exposure, flagged", [("1.1", False), ("5.0", False), ("5.1", True), ("9.6", True), ("0", False)])
def test_a_unit_is_flagged_above_the_threshold(exposure, flagged):
    found = security_findings([], {}, [analysis("bot.service", exposure)], 5.0)
    assert bool(found) == flagged
    if flagged:
        assert "bot.service has an exposure level of %.1f, above 5.0" % float(exposure) in found[0]


def test_a_failed_rating_is_a_finding_with_its_error():
    found = security_findings([], {}, [analysis("gone.service", rc=1, stderr="Unit gone.service not found.\n")], 5.0)
    assert found == ["systemd-analyze security gone.service failed (rc=1): Unit gone.service not found."]


def test_verdicts_of_passed_failed_and_unopenable_checks():
    item = {"label": "b/sqlite-d", "engine": "sqlite", "bot": "b", "name": "d"}
    results = [dict(item=item, ok=True, problems=[], size=8192, integrity="ok", tables={"t": 1}),
               dict(item=item, ok=False, problems=["row 3 missing from index i"], size=8192, integrity="corrupt"),
               dict(item=item, failed=True, msg="cannot open database '/x': the file does not exist\nmore"),
               dict(item=item, skipped=True)]
    verdicts = check_verdicts(results + [dict(item=item, changed=False)])
    # The last one never checked anything (no `ok`): not a pass.
    assert [v["ok"] for v in verdicts] == [True, False, False, False]
    assert verdicts[0]["line"] == "b/sqlite-d ok (8.0 KiB, integrity ok, 1 tables)"
    assert verdicts[2]["problems"] == ["cannot open database '/x': the file does not exist"]
    assert check_record(verdicts[:1], 1700000000) == {
        "b/sqlite-d": {"bot": "b", "engine": "sqlite", "database": "d", "last_run": 1700000000, "ok": True}}
