# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""logrotate_config against the real logrotate: a configuration lands only when
`logrotate -d` reads it, with every other file, without a new error."""

import os
import shutil
import stat

import pytest

from ansible_collections.botops.runbook.plugins.modules import logrotate_config

LOGROTATE = shutil.which("logrotate") or "/usr/sbin/logrotate"
pytestmark = pytest.mark.skipif(not os.path.exists(LOGROTATE), reason="scripts/setup.sh installs logrotate")

GOOD = "/srv/samplebot/shared/logs/*.log {\n    daily\n    rotate 14\n    missingok\n    copytruncate\n}\n"


@pytest.fixture
def conf(tmp_path):
    dest = tmp_path / "logrotate.d"
    dest.mkdir()
    main = tmp_path / "logrotate.conf"
    main.write_text("weekly\nrotate 4\ninclude %s\n" % dest)
    (dest / "dpkg").write_text("/var/log/dpkg.log {\n    monthly\n    missingok\n}\n")
    return {"config": str(main), "dest_dir": str(dest), "logrotate": LOGROTATE}


def args(conf, **extra):
    return dict(conf, name="botops-samplebot", **extra)


def test_a_valid_file_lands_once(run_module, conf):
    result = run_module(logrotate_config, args(conf, content=GOOD))
    assert not result.get("failed"), result.get("msg")
    path = os.path.join(conf["dest_dir"], "botops-samplebot")
    assert result["changed"] and result["path"] == path and result["errors"] == []
    with open(path) as handle:
        assert handle.read() == GOOD
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    again = run_module(logrotate_config, args(conf, content=GOOD))
    assert not again.get("failed") and again["changed"] is False


@pytest.mark.parametrize("content, error", [
    (GOOD.replace("rotate 14", "rotat 14"), "unknown option 'rotat'"),
    (GOOD.replace("daily", "daily\n    size 10Q"), "unknown unit 'Q'"),
    ("/var/log/dpkg.log {\n    daily\n}\n", "duplicate log entry for /var/log/dpkg.log"),
    (GOOD.replace("daily", "daily\n    su nosuchuser nosuchgroup"), "nosuchuser"),
])
@pytest.mark.parametrize("check_mode", [False, True])
def test_a_refused_file_never_lands_and_the_old_one_stays(run_module, conf, content, error, check_mode):
    run_module(logrotate_config, args(conf, content=GOOD))
    result = run_module(logrotate_config, args(conf, content=content), check_mode=check_mode)
    assert result.get("failed"), result
    assert error in result["msg"] and "Nothing was written" in result["msg"]
    assert any(error in line for line in result["errors"])
    with open(os.path.join(conf["dest_dir"], "botops-samplebot")) as handle:
        assert handle.read() == GOOD
    assert sorted(os.listdir(conf["dest_dir"])) == ["botops-samplebot", "dpkg"]


def test_check_mode_validates_and_writes_nothing(run_module, conf):
    result = run_module(logrotate_config, args(conf, content=GOOD), check_mode=True)
    assert not result.get("failed") and result["changed"]
    assert not os.path.exists(os.path.join(conf["dest_dir"], "botops-samplebot"))


def test_an_error_of_another_file_is_a_warning_not_ours(run_module, conf):
    with open(os.path.join(conf["dest_dir"], "broken"), "w") as handle:
        handle.write("/var/log/other.log {\n    notanoption\n}\n")
    result = run_module(logrotate_config, args(conf, content=GOOD))
    assert not result.get("failed"), result.get("msg")
    assert any("notanoption" in w for w in result.get("warnings", []))


def test_a_config_that_does_not_include_the_directory_is_refused(run_module, conf, tmp_path):
    with open(conf["config"], "w") as handle:
        handle.write("weekly\n")
    result = run_module(logrotate_config, args(conf, content=GOOD))
    assert result.get("failed") and "does not include" in result["msg"]


@pytest.mark.parametrize("name", ["../x", "a.disabled", "x~", "", "a b"])
def test_names_logrotate_would_skip_are_refused(run_module, conf, name):
    result = run_module(logrotate_config, dict(conf, name=name, content=GOOD))
    assert result.get("failed") and "not a plain file name" in result["msg"]
    assert os.listdir(conf["dest_dir"]) == ["dpkg"]


def test_absent_removes_it(run_module, conf):
    run_module(logrotate_config, args(conf, content=GOOD))
    result = run_module(logrotate_config, args(conf, state="absent"))
    assert result["changed"] and os.listdir(conf["dest_dir"]) == ["dpkg"]
