# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sample bot that the demo and the deploy scenario ship: its release archives,
its migrations and its health answer, on real SQLite files."""

import hashlib
import json
import os
import subprocess
import sys
import tarfile

import pytest

SAMPLEBOT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "samplebot")


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, os.path.join(SAMPLEBOT, "build.py"), "--out", str(out)], check=True,
                   capture_output=True)
    return {name.split("-", 1)[1][:-len(".tar.gz")]: str(out / name) for name in os.listdir(str(out))}


def unpack(archive, where):
    with tarfile.open(archive) as tar:
        tar.extractall(str(where))  # our own archive
    return str(where)


def bot(release_dir, db, *args):
    env = dict(os.environ, BOT_DB_PATH=str(db), BOT_TOKEN="t", PYTHONPATH=release_dir)
    return subprocess.run([sys.executable, "-m", "samplebot"] + list(args), env=env, cwd=release_dir,
                          capture_output=True, text=True, check=False)


def test_three_releases_rebuild_byte_for_byte(archives, tmp_path):
    assert sorted(archives) == ["1.0.0", "1.1.0", "1.2.0"]
    first = {v: hashlib.sha256(open(p, "rb").read()).hexdigest() for v, p in archives.items()}
    subprocess.run([sys.executable, os.path.join(SAMPLEBOT, "build.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    again = {v: hashlib.sha256(open(str(tmp_path / ("samplebot-%s.tar.gz" % v)), "rb").read()).hexdigest()
             for v in archives}
    assert first == again


def test_migrations_apply_once_and_report_the_schema_version(archives, tmp_path):
    db = tmp_path / "bot_data.db"
    v1 = unpack(archives["1.0.0"], tmp_path / "v1")
    assert bot(v1, db, "db-version").stdout.strip() == "none"
    assert bot(v1, db, "migrate").stdout.strip() == "applied 0001"
    assert bot(v1, db, "migrate").stdout.strip() == "up to date"
    v2 = unpack(archives["1.1.0"], tmp_path / "v2")
    assert bot(v2, db, "migrate").stdout.strip() == "applied 0002"
    assert bot(v2, db, "db-version").stdout.strip() == "0002"


def test_the_broken_release_fails_its_health_queries(archives, tmp_path):
    sys.path.insert(0, unpack(archives["1.2.0"], tmp_path / "v3"))
    try:
        from samplebot import service, store  # pylint: disable=import-outside-toplevel
        os.environ["BOT_DB_PATH"] = str(tmp_path / "bot_data.db")
        store.migrate(store.connect(), "0003")
        with open(str(tmp_path / "v3" / "samplebot" / "release.json")) as handle:
            release = json.load(handle)
        code, body = service.health(release)
        assert code == 503 and "deleted_at" in body["error"]
        release["health_queries"] = release["health_queries"][:1]
        assert service.health(release) == (200, {"status": "ok", "version": "1.2.0", "schema": "0003"})
    finally:
        sys.path.pop(0)
        os.environ.pop("BOT_DB_PATH", None)
        for name in [m for m in sys.modules if m == "samplebot" or m.startswith("samplebot.")]:
            del sys.modules[name]


def test_it_refuses_to_start_without_a_token(archives, tmp_path):
    v1 = unpack(archives["1.0.0"], tmp_path / "v1")
    env = dict(os.environ, BOT_DB_PATH=str(tmp_path / "bot.db"), PYTHONPATH=v1)
    env.pop("BOT_TOKEN", None)
    result = subprocess.run([sys.executable, "-m", "samplebot", "run"], env=env, cwd=v1, capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 2 and "BOT_TOKEN is not set" in result.stderr
