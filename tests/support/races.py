# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Modules run at the same time, with the race window held open on purpose.

``Run(module, args, rules)`` starts a module in a subprocess at once (as
``crashpoints.run`` does, without a kill) and ``finish()`` waits for it: (returncode,
the module's JSON result or None, stderr). Two or more runs started together race
for real; to make the window wide and not a matter of luck, a run may stop at a
chosen file-system call - a Python audit hook in the subprocess only, never
anything in module code - and wait there for the test:

``gate = Gate(tmp_path, "name")``; ``gate.rule("os.listdir", r"^/backups$")`` is a
rule for a run: at its first such call (the event's first two arguments, as text,
searched with the regular expression) the run says it has arrived and waits
until the gate opens (at most ``max_wait`` seconds); ``gate.mark(...)`` only says
it has arrived (event ``botops.start``: the module's ``main()`` begins).
``gate.wait_arrived(n, t)`` waits until ``n`` runs are there or ``t`` seconds have
passed (a run that waits for a lock another run holds never arrives: that is the
lock working), and ``gate.open()`` lets them all go at once - just after a new
second begins, so that runs let go together also read the clock in one second.
"""

import json
import os
import subprocess
import sys
import textwrap
import time

RUNNER = textwrap.dedent("""
    import importlib, json, os, re, sys, time
    from ansible.module_utils.testing import patch_module_args
    module = importlib.import_module("ansible_collections.botops.runbook.plugins.modules." + sys.argv[1])
    args, rules = json.loads(sys.argv[2]), json.loads(sys.argv[3])
    WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    state = {"armed": False, "busy": False}
    for rule in rules:
        rule["hits"], rule["re"] = 0, re.compile(rule["match"])

    def writing(args):
        mode, flags = (args[1], args[2]) if len(args) >= 3 else (None, None)
        if isinstance(mode, str) and any(c in mode for c in "wax+"):
            return True
        return isinstance(flags, int) and bool(flags & WRITING)

    def act(rule):
        if rule.get("arrived"):
            with open(os.path.join(rule["arrived"], str(os.getpid())), "w"):
                pass
        if rule.get("go"):
            deadline = time.monotonic() + rule.get("max_wait", 30)
            while not os.path.exists(rule["go"]) and time.monotonic() < deadline:
                time.sleep(0.01)

    def hook(event, eargs):
        if not state["armed"] or state["busy"]:
            return
        for rule in rules:
            if rule["event"] != event or rule["hits"] >= rule.get("times", 1):
                continue
            if rule.get("writing") is not None and writing(eargs) != rule["writing"]:
                continue
            if not rule["re"].search(" ".join(str(a) for a in eargs[:2])):
                continue
            rule["hits"] += 1
            state["busy"] = True
            try:
                act(rule)
            finally:
                state["busy"] = False

    sys.addaudithook(hook)
    with patch_module_args(args):
        state["armed"] = True
        sys.audit("botops.start")
        module.main()
""")


def environment():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


class Run:
    """One module run in a subprocess, started at once; ``rules``: see the module docstring."""

    def __init__(self, module, args, rules=(), cwd=None):
        self.module, self.args = module, args
        argv = [sys.executable, "-c", RUNNER, module, json.dumps(args), json.dumps(list(rules))]
        self.proc = subprocess.Popen(argv, env=environment(), cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.outcome = None

    def running(self):
        return self.proc.poll() is None

    def finish(self, timeout=120):
        """(returncode, JSON result or None, stderr)."""
        if self.outcome is None:
            out, err = self.proc.communicate(timeout=timeout)
            result = None
            for line in out.splitlines():
                if line.startswith("{"):
                    result = json.loads(line)
            self.outcome = (self.proc.returncode, result, err)
        return self.outcome


class Gate:
    """Where runs stop and wait together (see the module docstring)."""

    def __init__(self, tmp_path, name):
        self.arrived = os.path.join(str(tmp_path), ".gate-%s" % name)
        os.mkdir(self.arrived)
        self.go = os.path.join(str(tmp_path), ".gate-%s.go" % name)

    def rule(self, event, match, times=1, writing=None, max_wait=30):
        return {"event": event, "match": match, "times": times, "writing": writing, "arrived": self.arrived,
                "go": self.go, "max_wait": max_wait}

    def mark(self, event, match, times=1, writing=None):
        """A rule that only says the run got there (it does not wait)."""
        return {"event": event, "match": match, "times": times, "writing": writing, "arrived": self.arrived}

    def count(self):
        return len(os.listdir(self.arrived))

    def wait_arrived(self, count, timeout, runs=()):
        """How many runs arrived, once ``count`` have or ``timeout`` seconds passed
        (or every run of ``runs`` has ended)."""
        deadline = time.monotonic() + timeout
        while self.count() < count and time.monotonic() < deadline:
            if runs and not any(run.running() for run in runs):
                break
            time.sleep(0.02)
        return self.count()

    def open(self, align=True):
        """Let every waiting run (and every later one) go; ``align``: 0.1 s into a new second."""
        if align:
            time.sleep(1.1 - (time.time() % 1.0) if time.time() % 1.0 > 0.1 else 0.1 - time.time() % 1.0)
        with open(self.go, "w"):
            pass


def start_all(module, arg_list, rules=(), cwd=None):
    """One run of ``module`` per entry of ``arg_list``, all started before any is waited for."""
    return [Run(module, args, rules, cwd=cwd) for args in arg_list]
