# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Crash points across a whole ansible-playbook run (see crashpoints.run_playbook).

On PYTHONPATH, Python imports this at start-up in every process of the run: the
controller, its workers, and every module it starts on a connection=local host.
With BOTOPS_KILL_COUNTER set, an audit hook counts the file-system calls that
touch a path under BOTOPS_KILL_PATHS (in one counter file shared by all those
processes, under flock) and, at call number BOTOPS_KILL_AT, SIGKILLs every
process of the run (each writes its pid down as it starts), its process group
and itself: the controller, its workers and whatever module was working die on
that call, as in a power cut of the controller and the host.
"""

import os
import sys

if os.environ.get("BOTOPS_KILL_COUNTER"):
    import fcntl
    import signal

    _PREFIXES = tuple(p.rstrip("/") + "/" for p in os.environ["BOTOPS_KILL_PATHS"].split(os.pathsep) if p)
    _KILL_AT = int(os.environ.get("BOTOPS_KILL_AT") or 0)
    _COUNTER = os.environ["BOTOPS_KILL_COUNTER"]
    _PGID = int(os.environ.get("BOTOPS_KILL_PGID") or 0)
    _EVENTS = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
               "os.link", "os.symlink", "shutil.copyfile", "shutil.rmtree", "sqlite3.connect"}
    _TWO_PATHS = {"os.rename", "os.link", "os.symlink", "shutil.copyfile"}
    _WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    _busy = [False]

    def _writing(args):
        mode, flags = (args[1], args[2]) if len(args) >= 3 else (None, None)
        if isinstance(mode, str) and any(c in mode for c in "wax+"):
            return True
        return isinstance(flags, int) and bool(flags & _WRITING)

    def _touches(paths):
        for path in paths:
            if isinstance(path, (str, bytes)):
                path = os.path.abspath(os.fsdecode(path))
                if (path + "/").startswith(_PREFIXES):
                    return path
        return None

    def _hook(event, args):
        if _busy[0] or not (event in _EVENTS or (event == "open" and _writing(args))):
            return
        touched = _touches(args[:2] if event in _TWO_PATHS else args[:1])
        if not touched:
            return
        _busy[0] = True
        try:
            fd = os.open(_COUNTER, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                count = int(os.read(fd, 32) or b"0") + 1
                os.lseek(fd, 0, os.SEEK_SET)
                os.ftruncate(fd, 0)
                os.write(fd, str(count).encode())
                with open(_COUNTER + ".log", "a") as log:
                    log.write("%d %s %s\n" % (count, event, touched))
                if count == _KILL_AT:
                    _kill_the_run()
            finally:
                os.close(fd)
        finally:
            _busy[0] = False

    def _kill_the_run():
        # Ansible's workers start sessions of their own (setsid): the process
        # group alone would leave them running the rest of their task's loop.
        # BOTOPS_KILL_SCOPE=group: only the controller's process group and the
        # process making the call (an operator's Ctrl-C, a cancelled job: the
        # workers, in sessions of their own, go on with their task's loop).
        others = []
        if os.environ.get("BOTOPS_KILL_SCOPE", "run") == "run":
            try:
                with open(_COUNTER + ".pids") as pids:
                    others = [int(p) for p in pids.read().split() if int(p) != os.getpid()]
            except OSError:
                pass
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if _PGID:
            try:
                os.killpg(_PGID, signal.SIGKILL)
            except OSError:
                pass
        os.kill(os.getpid(), signal.SIGKILL)

    with open(_COUNTER + ".pids", "a") as _pids:  # every process of the run, as it starts
        _pids.write("%d\n" % os.getpid())
    sys.addaudithook(_hook)
