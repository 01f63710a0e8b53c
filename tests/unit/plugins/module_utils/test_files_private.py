# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backup tree made by its first backup is private at every level."""

import os
import stat

import pytest

from ansible_collections.botops.runbook.plugins.module_utils._files import makedirs_private


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o000])
def test_every_directory_it_creates_is_0700_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        makedirs_private(str(tmp_path / "backups" / "botops" / "bot" / "sqlite-db"))
    finally:
        os.umask(old)
    for part in ["backups", "backups/botops", "backups/botops/bot", "backups/botops/bot/sqlite-db"]:
        assert stat.S_IMODE(os.stat(tmp_path / part).st_mode) == 0o700, part


def test_existing_directories_are_left_as_they_are(tmp_path):
    (tmp_path / "shared").mkdir(mode=0o755)
    os.chmod(tmp_path / "shared", 0o755)
    makedirs_private(str(tmp_path / "shared" / "new"))
    makedirs_private(str(tmp_path / "shared" / "new"))
    assert stat.S_IMODE(os.stat(tmp_path / "shared").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "shared" / "new").st_mode) == 0o700


def test_a_file_in_the_way_fails(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OSError):
        makedirs_private(str(tmp_path / "f" / "sub"))
