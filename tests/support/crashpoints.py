# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Crash-point enumeration, after the ALICE study of crash consistency (OSDI 2014).

A module runs in a subprocess whose file-system calls are counted with a Python
audit hook (``sys.addaudithook``): every open for writing, rename/replace,
remove, mkdir/rmdir, chmod/chown, copyfile, SQLite connect and program start.
``count(module, args)`` says how many such calls a run makes; ``run(module,
args, kill_at=N)`` runs it again and SIGKILLs the process just before its N-th
call. A test calls it for N = 1..count (or a sample of them) and checks its
invariants after each kill.

The hook is armed when the module's ``main()`` starts, so imports do not count.
Python's audit events have no ``write`` or ``fsync``: a kill between two writes
of one file lands on the next counted call instead (what a kill leaves is the
same: the page cache keeps every completed write).
"""

import json
import os
import subprocess
import sys
import textwrap
import time

RUNNER = textwrap.dedent("""
    import atexit, importlib, json, os, signal, sys
    from ansible.module_utils.testing import patch_module_args
    module = importlib.import_module("ansible_collections.botops.runbook.plugins.modules." + sys.argv[1])
    args, kill_at, report = json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    COUNTED = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
               "os.link", "os.symlink", "shutil.copyfile", "shutil.rmtree", "sqlite3.connect",
               "subprocess.Popen", "os.posix_spawn", "os.exec"}
    state = {"armed": False, "calls": 0, "seen": []}

    def writing(args):
        mode, flags = args[1], args[2]
        if isinstance(mode, str) and any(c in mode for c in "wax+"):
            return True
        return isinstance(flags, int) and bool(flags & WRITING)

    def hook(event, args):
        if not state["armed"]:
            return
        if event in COUNTED or (event == "open" and len(args) >= 3 and writing(args)):
            state["calls"] += 1
            if len(state["seen"]) < 2000:
                state["seen"].append("%s %s" % (event, str(args[0])[-80:] if args else ""))
            if state["calls"] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    def done():
        state["armed"] = False
        with open(report, "w") as handle:
            json.dump({"calls": state["calls"], "seen": state["seen"]}, handle)

    sys.addaudithook(hook)
    atexit.register(done)
    with patch_module_args(args):
        state["armed"] = True
        module.main()
""")


def run(module, args, kill_at=0, workdir=None, timeout=300, wrap=()):
    """(returncode, the module's JSON result or None, {calls, seen} or None when killed).
    ``wrap``: a command prefix the run goes through (strace, for the durability tests)."""
    report = os.path.join(workdir or "/tmp", ".crashpoints-%d.json" % os.getpid())
    if os.path.exists(report):
        os.unlink(report)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    argv = list(wrap) + [sys.executable, "-c", RUNNER, module, json.dumps(args), str(kill_at), report]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
    counted = None
    if os.path.exists(report):
        with open(report) as handle:
            counted = json.load(handle)
        os.unlink(report)
    return proc.returncode, result, counted


def count(module, args, workdir=None):
    """How many counted calls one whole run of ``module`` makes (it must succeed)."""
    rc, result, counted = run(module, args, 0, workdir)
    assert rc == 0 and result and not result.get("failed"), (rc, result)
    return counted["calls"], counted["seen"]


def points(total, sample=32):
    """Every crash point, or (in ``make test``) a spread sample of them: all when
    BOTOPS_CRASHPOINTS=all, else (more than ``sample``) about ``sample`` of them
    including both ends."""
    report = os.environ.get("BOTOPS_CRASHPOINTS_REPORT")
    if report:  # make crashtest: the number of points of each operation
        with open(report, "a") as handle:
            handle.write("%s: %d crash points\n" % (os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0], total))
    if os.environ.get("BOTOPS_CRASHPOINTS") == "all" or total <= sample:
        return list(range(1, total + 1))
    step = (total - 1) / float(sample - 1)
    return sorted({1, total} | {max(1, min(total, int(round(1 + i * step)))) for i in range(sample)})


HOOK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crashhook")


def run_playbook(argv, watched, kill_at=0, workdir=None, timeout=600, scope="run"):
    """Run ``ansible-playbook`` with ``argv`` (its hosts on connection local) and
    kill it just before its ``kill_at``-th file-system call under one of the
    ``watched`` directories (0: never): every process of the run (``scope``
    "run"), or the controller's process group and the calling process only
    ("group": Ansible's workers, in sessions of their own, live on). (returncode,
    output, the calls counted: ["<n> <event> <path>"])."""
    workdir = workdir or "/tmp"
    counter = os.path.join(workdir, ".crashhook-%d" % os.getpid())
    for path in (counter, counter + ".log", counter + ".pids"):
        if os.path.exists(path):
            os.unlink(path)
    python_path = [HOOK_DIR] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, BOTOPS_KILL_COUNTER=counter, BOTOPS_KILL_AT=str(kill_at), BOTOPS_KILL_SCOPE=scope,
               BOTOPS_KILL_PATHS=os.pathsep.join(watched), ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false",
               PYTHONPATH=os.pathsep.join(python_path))
    # The shell's pid is the new session's process group, which the hook kills.
    proc = subprocess.run(["sh", "-c", 'export BOTOPS_KILL_PGID=$$; exec ansible-playbook "$@"', "ansible-playbook"] + argv,
                          env=env, capture_output=True, text=True, timeout=timeout, check=False,
                          start_new_session=True)
    wait_for_pids(counter + ".pids")
    calls = []
    if os.path.exists(counter + ".log"):
        with open(counter + ".log") as handle:
            calls = handle.read().splitlines()
    for path in (counter, counter + ".log", counter + ".pids"):
        if os.path.exists(path):
            os.unlink(path)
    return proc.returncode, proc.stdout + proc.stderr, calls


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for_pids(listing, timeout=60):
    """Until every process listed in ``listing`` (one pid a line) has ended: a
    worker that outlived its controller finishes what it does before the checks."""
    if not os.path.exists(listing):
        return
    with open(listing) as handle:
        pids = [int(p) for p in handle.read().split()]
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
