# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private working directories for what must not outlive a run: a decrypted or
decompressed backup, a passfile.

A working directory is ``.botops-<kind>-<random>.tmp`` (mode 0700, the runner's
own) in a fixed parent: beside the target when one is given (the SQLite database
a restore swaps in), else the runner's private cache ``~/.cache/botops.runbook``
(the account's home from the password database, not ``$HOME``). While a run uses
it, the directory is held open and flock()ed; a run killed on the spot (SIGKILL,
a power cut) leaves it behind, and the next run that makes one in the same
parent removes every such directory that nobody holds any more. Another user's
entry of that name, a symlink or anything not 0700 is left alone. The directory
is named through ``/proc/<pid>/fd/<fd>``, so a user who may rename entries in the
parent (the bot, in its data directory) cannot make a path here mean anything
else."""

import errno
import fcntl
import os
import pwd
import stat
import tempfile

PREFIX = ".botops-"
SUFFIX = ".tmp"


class WorkDirError(Exception):
    pass


def private_cache():
    """``~/.cache/botops.runbook`` of the effective user (made 0700), or None when
    it cannot be made or is not the user's own private directory."""
    try:
        home = pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return None
    path = os.path.join(home, ".cache", "botops.runbook")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
        return None
    return path


def _clear(fd):
    """Remove everything in the directory open at ``fd``, never following a symlink."""
    for name in os.listdir(fd):
        try:
            os.unlink(name, dir_fd=fd)
            continue
        except IsADirectoryError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.EISDIR, errno.EPERM):
                continue
        try:
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        except OSError:
            continue
        try:
            _clear(sub)
        finally:
            os.close(sub)
        try:
            os.rmdir(name, dir_fd=fd)
        except OSError:
            pass


def _remove(parent_fd, name, fd):
    """Empty the directory open at ``fd`` and remove it, if ``name`` in the
    directory ``parent_fd`` is still that directory."""
    _clear(fd)
    try:
        mine, now = os.fstat(fd), os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        if (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            os.rmdir(name, dir_fd=parent_fd)
    except OSError:
        pass


def sweep(parent, kind):
    """Remove the working directories of ``kind`` in ``parent`` that killed runs
    left: the runner's own, 0700, and flock()ed by nobody. Returns their names."""
    prefix = "%s%s-" % (PREFIX, kind)
    removed = []
    try:
        parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return removed
    try:
        for name in os.listdir(parent_fd):
            if not (name.startswith(prefix) and name.endswith(SUFFIX)):
                continue
            try:
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent_fd)
            except OSError:
                continue
            try:
                info = os.fstat(fd)
                if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) != 0o700:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live run holds it
                _remove(parent_fd, name, fd)
                removed.append(name)
            finally:
                os.close(fd)
    finally:
        os.close(parent_fd)
    return removed


class WorkDir:
    """A private working directory of ``kind`` in ``parent`` (default: the private
    cache, else a new directory in the system's temporary directory); see the
    module's docstring. ``path`` names it for as long as it is open; ``close()``
    (or the end of a ``with``) removes it and all it holds."""

    def __init__(self, kind, parent=None):
        self.kind = kind
        self.parent = parent or private_cache() or tempfile.gettempdir()
        self.swept = sweep(self.parent, kind)
        try:
            self.name = tempfile.mkdtemp(prefix="%s%s-" % (PREFIX, kind), suffix=SUFFIX, dir=self.parent)
            self.fd = os.open(self.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            raise WorkDirError("cannot make a private working directory in '%s': %s; it must exist and be writable"
                               % (self.parent, exc.strerror))
        info = os.fstat(self.fd)
        if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) != 0o700:
            os.close(self.fd)
            raise WorkDirError("the working directory '%s' was replaced while it was made (owner %d, mode %o); another "
                               "user can write '%s': make it the running user's own"
                               % (self.name, info.st_uid, stat.S_IMODE(info.st_mode), self.parent))
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.path = "/proc/%d/fd/%d" % (os.getpid(), self.fd)

    def join(self, name):
        return os.path.join(self.path, name)

    def close(self):
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            parent_fd = os.open(self.parent, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            parent_fd = None
        try:
            if parent_fd is None:
                _clear(fd)
            else:
                _remove(parent_fd, os.path.basename(self.name), fd)
        finally:
            os.close(fd)
            if parent_fd is not None:
                os.close(parent_fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
