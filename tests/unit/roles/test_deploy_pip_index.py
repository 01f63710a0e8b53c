# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy role's package index may hold a token: it must reach pip (the index
sees the credentials) without ever being on a process's command line or in the
play's output, even at -vvv and when pip fails.

The build tasks run for real on this machine (ansible-playbook, connection local):
a release directory, a virtualenv, pip against a local index that answers 404 and
records what it saw, including every process's command line while pip asked it."""

import base64
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading

import pytest

TOKEN = "tok-7f3a9c-SECRET"
USER = "botops"


def command_lines_holding(text):
    """The command lines of this machine's processes that contain ``text``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                line = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in line:
            found.append(line)
    return found


@pytest.fixture
def index():
    seen = {"requests": [], "authorization": [], "argv_with_token": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # pylint: disable=invalid-name
            seen["requests"].append(self.path)
            seen["authorization"].append(self.headers.get("Authorization"))
            seen["argv_with_token"].extend(command_lines_holding(TOKEN))
            if self.headers.get("Authorization") is None:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="index"')
            else:
                self.send_response(404)
            self.end_headers()

        def log_message(self, *args):  # pylint: disable=arguments-differ
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://%s:%s@127.0.0.1:%d/simple/" % (USER, TOKEN, server.server_address[1]), seen
    server.shutdown()
    server.server_close()


@pytest.mark.skipif(os.geteuid() != 0, reason="the build tasks make root-owned release files")
def test_the_index_token_reaches_pip_but_no_command_line_and_no_output(index, tmp_path):
    url, seen = index
    root = tmp_path / "root"
    (root / "releases").mkdir(parents=True)
    src = tmp_path / "src"
    src.mkdir()
    (src / "requirements.txt").write_text("botops-no-such-package==1.0\n")
    playbook = tmp_path / "build.yml"
    variables = {
        "deploy_bot_name": "tokenbot", "deploy_version": "1.0.0", "deploy_source_dir": str(src),
        "deploy_pip_index_url": url, "__deploy_release_id": "r1", "__deploy_release_dir": str(root / "releases" / "r1"),
        "_release_state": {"paths": {"root": str(root), "release_marker": ".botops-release"}},
    }
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [{"name": "Build", "ansible.builtin.include_role": {"name": "botops.runbook.deploy", "tasks_from": "build"},
                   "vars": variables}],
    }]))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    proc = subprocess.run(["ansible-playbook", "-vvv", "-i", "localhost,", str(playbook)], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]  # the package does not exist
    # pip asked our index, with the credentials of the URL
    assert seen["requests"], out[-3000:]
    expected = "Basic " + base64.b64encode(("%s:%s" % (USER, TOKEN)).encode()).decode()
    assert expected in seen["authorization"], seen
    # ... while no process had the token on its command line
    assert seen["argv_with_token"] == [], seen["argv_with_token"]
    # the failure is explained, and neither the token nor the user:token pair is shown
    assert "pip could not install requirements.txt into release r1" in out, out[-3000:]
    assert TOKEN not in out
    assert "%s:%s" % (USER, TOKEN) not in out
    # the root-only config file that carried it is gone
    assert not (root / ".botops-pip.conf").exists()
    shutil.rmtree(str(root))
