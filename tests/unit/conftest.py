# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared fixtures: the collection on sys.path, a module runner, real databases,
and a throwaway PostgreSQL server for the session."""

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from hypothesis import settings

# Property tests: the same examples on every run (CI must not fail by chance);
# BOTOPS_HYPOTHESIS=explore draws new ones while developing.
settings.register_profile("reproducible", derandomize=True, deadline=None, database=None)
settings.register_profile("explore", deadline=None)
settings.load_profile("explore" if os.environ.get("BOTOPS_HYPOTHESIS") == "explore" else "reproducible")

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
# One generator of realistic bot databases, shared with the integration targets.
sys.path.insert(0, os.path.join(REPO, "tests", "integration", "targets", "setup_botdb", "files"))


def _make_collection_importable():
    """Import the collection as ansible_collections.botops.runbook from this tree.

    The Makefile puts such a tree on PYTHONPATH; running pytest directly gets a
    private one here.
    """
    try:
        import ansible_collections.botops.runbook  # noqa: F401 pylint: disable=unused-import
        return
    except ImportError:
        pass
    root = tempfile.mkdtemp(prefix="botops-collections-")
    atexit.register(shutil.rmtree, root, True)
    os.makedirs(os.path.join(root, "ansible_collections", "botops"))
    os.symlink(REPO, os.path.join(root, "ansible_collections", "botops", "runbook"))
    sys.path.insert(0, root)
    for name in [n for n in sys.modules if n == "ansible_collections" or n.startswith("ansible_collections.")]:
        del sys.modules[name]


_make_collection_importable()

import botdb  # noqa: E402 pylint: disable=wrong-import-position
from ansible.module_utils import basic  # noqa: E402 pylint: disable=wrong-import-position
from ansible.module_utils.common import warnings as module_warnings  # noqa: E402 pylint: disable=wrong-import-position
from ansible.module_utils.testing import patch_module_args  # noqa: E402 pylint: disable=wrong-import-position


class ModuleExit(Exception):
    """exit_json or fail_json was called; ``result`` holds what it returned."""

    def __init__(self, result, failed):
        super().__init__(result.get("msg", ""))
        self.result = result
        self.failed = failed


def _exit_json(self, **kwargs):  # pylint: disable=unused-argument
    raise ModuleExit(dict(kwargs, failed=False), failed=False)


def _fail_json(self, msg, **kwargs):  # pylint: disable=unused-argument
    raise ModuleExit(dict(kwargs, msg=msg, failed=True), failed=True)


@pytest.fixture
def run_module(monkeypatch):
    """run_module(module, args, check_mode=False, diff=False) -> result dict.

    The module runs in this process exactly as Ansible would run it; the result
    has ``failed`` set when the module called fail_json.
    """
    # A module runs as on a host: once a test of a controller plugin (a filter, a
    # lookup) has imported controller code into this process, module_utils would
    # otherwise send warnings straight to the controller's display, not the result.
    from ansible.module_utils import _internal  # pylint: disable=import-outside-toplevel
    monkeypatch.setattr(_internal, "is_controller", False)
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", _fail_json)

    def run(module, args, check_mode=False, diff=False):
        args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
        module_warnings._global_warnings.clear()  # pylint: disable=protected-access
        with patch_module_args(args):
            try:
                module.main()
            except ModuleExit as done:
                done.result["warnings"] = list(module_warnings.get_warning_messages())
                # Results must survive Ansible's JSON round trip.
                return json.loads(json.dumps(done.result))
        raise AssertionError("module returned without exit_json or fail_json")

    return run


@pytest.fixture(params=["wal", "delete"])
def journal_mode(request):
    """Run a test on a database in WAL and in rollback-journal (DELETE) mode."""
    return request.param


@pytest.fixture
def bot_db(tmp_path, journal_mode):
    """A real bot database in ``tmp_path``; returns (path, {table: rows})."""
    path = str(tmp_path / "bot_data.db")
    counts = botdb.create(path, journal_mode=journal_mode)
    return path, counts


@pytest.fixture
def small_fs(tmp_path):
    """A real, tiny filesystem (tmpfs), to run out of space or be read-only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounts = []

    def mount(size, readonly=False):
        point = tmp_path / ("fs%d" % len(mounts))
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs", str(point)], check=True)
        mounts.append(point)
        if readonly:
            subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", str(point)], check=False)


@pytest.fixture(scope="session")
def pg_server():
    """A private PostgreSQL server for the whole session, removed afterwards."""
    import pgserver  # pylint: disable=import-outside-toplevel
    server = pgserver.PgServer(tempfile.mkdtemp(prefix="botops-pg-"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_botdb(pg_server):
    """botdb filled as the runbooks' bots fill theirs: pgbench tables plus users and
    messages with JSONB and a foreign key, owned by the application role."""
    import pgserver  # pylint: disable=import-outside-toplevel
    import subprocess  # pylint: disable=import-outside-toplevel
    env = dict(os.environ, PGPASSWORD=pg_server["app_password"])  # the test harness only; modules use a passfile
    subprocess.run([os.path.join(pg_server["bindir"], "pgbench"), "-i", "-s", "1", "-q", "--foreign-keys",
                    "-h", pg_server["host"], "-p", str(pg_server["port"]), "-U", pg_server["app_user"],
                    pg_server["app_db"]], env=env, check=True, capture_output=True)
    server = pgserver.PgServer(pg_server["base"])
    server.info = pg_server
    server.psql("""
        CREATE TABLE users (id bigserial PRIMARY KEY, telegram_id bigint UNIQUE NOT NULL, name text);
        CREATE TABLE messages (id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES users(id),
                               body jsonb NOT NULL, sent_at timestamptz NOT NULL DEFAULT now());
        INSERT INTO users (telegram_id, name) SELECT 1000 + g, 'user ' || g FROM generate_series(1, 300) g;
        INSERT INTO messages (user_id, body)
            SELECT 1 + g % 300, jsonb_build_object('text', md5(g::text), 'n', g) FROM generate_series(1, 5000) g;
        ANALYZE;
    """, db=pg_server["app_db"], user=pg_server["app_user"])
    return pg_server


@pytest.fixture
def pg_params(pg_botdb):
    """Module arguments that connect as the application role over TCP."""
    return {"login_host": pg_botdb["host"], "login_port": pg_botdb["port"], "login_user": pg_botdb["app_user"],
            "login_password": pg_botdb["app_password"], "db": pg_botdb["app_db"]}
