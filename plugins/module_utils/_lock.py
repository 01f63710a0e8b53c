# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One backup (or restore) of a database at a time, whoever runs it; one writer
of a deploy ledger; a prune and a backup never in one directory at once.

A lock is a file beside what it guards, flock()ed: every runner that may touch
the guarded thing (root, or the bot's own user) opens the same file, so a root
and an unprivileged backup of one database exclude each other; a user who may
not read the guarded thing cannot open the lock, so cannot hold it. The file is
never followed through a symlink and must belong to root, to the runner, or to
the owner of what it guards. (PostgreSQL backups lock with an advisory lock on
the server instead: see ``_postgres.PostgresClient.backup_lock``.)
"""

import fcntl
import os
import stat
import time

from ansible_collections.botops.runbook.plugins.module_utils._files import BackupError

LOCK_SUFFIX = ".botops.lock"


def lock_path_beside(path):
    """The lock file of ``path``: ``.<name>.botops.lock`` in its directory."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, ".%s%s" % (name, LOCK_SUFFIX))


def is_lock_file(name):
    return name.startswith(".") and name.endswith(LOCK_SUFFIX)


class FileLock:
    """An exclusive flock on ``lock_path_beside(guarded)`` (or on ``path``; a
    directory given as both is flock()ed itself), waited for ``timeout`` seconds,
    then a clear error naming ``what`` and who holds it (``activity``: "another
    <activity> <what> is still running"). A lock file this (root) process makes
    gets the owner, group and read/write bits of ``guarded``, so its users can
    take the lock too."""

    def __init__(self, guarded, what, timeout, path=None, activity="backup of"):
        self.guarded = guarded
        self.what = what
        self.timeout = timeout
        self.path = path or lock_path_beside(guarded)
        self.activity = activity
        self.fd = None

    def _open(self):
        if self.path == self.guarded:  # a directory locks itself: no file is left in it
            return os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise BackupError("cannot open the lock file '%s' for %s: %s; it must be a plain file that this user may "
                              "read (a symlink is refused)" % (self.path, self.what, exc.strerror))
        info = os.fstat(fd)
        try:
            guarded = os.stat(self.guarded)
        except OSError:
            guarded = None
        owners = {0, os.geteuid()} | ({guarded.st_uid} if guarded else set())
        if not stat.S_ISREG(info.st_mode) or info.st_uid not in owners:
            os.close(fd)
            raise BackupError("the lock file '%s' for %s belongs to uid %d, not to root, this user or the owner of "
                              "'%s': someone else made it to hold the lock; remove it"
                              % (self.path, self.what, info.st_uid, self.guarded))
        self._follow_owner(fd, info, guarded)
        return fd

    @staticmethod
    def _follow_owner(fd, info, guarded):
        if guarded is not None and info.st_uid == os.geteuid() == 0:
            wanted = (guarded.st_uid, guarded.st_gid, stat.S_IMODE(guarded.st_mode) & 0o666)
            if (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) != wanted:
                os.fchown(fd, wanted[0], wanted[1])
                os.fchmod(fd, wanted[2])

    def follow_owner(self):
        """Held: give the lock file the owner of ``guarded`` again, now that it exists
        or was replaced (a restore to a new path): its users must take the lock too."""
        if self.fd is not None and self.path != self.guarded:
            try:
                guarded = os.stat(self.guarded)
            except OSError:
                return
            self._follow_owner(self.fd, os.fstat(self.fd), guarded)

    def __enter__(self):
        self.fd = self._open()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    self.fd = None
                    raise BackupError("another %s %s is still running (lock %s held for more than %d s); "
                                      "wait for it to finish or raise lock_timeout"
                                      % (self.activity, self.what, self.path, self.timeout))
                time.sleep(0.2)

    def __exit__(self, *exc):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
