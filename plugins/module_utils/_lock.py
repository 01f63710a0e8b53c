# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One backup of a database at a time."""

import fcntl
import hashlib
import os
import tempfile
import time

from ansible_collections.botops.runbook.plugins.module_utils._files import BackupError

LOCK_DIR = "/run/lock/botops"


class DatabaseLock:
    """An exclusive lock per database, so two backups of one database never overlap.

    The lock file lives in /run/lock/botops (or, for a user who may not write
    there, the temp dir), named after the database; ``timeout`` seconds are waited
    for, then a clear error.
    """

    def __init__(self, key, timeout):
        self.key = key
        self.timeout = timeout
        self.name = "botops-%s.lock" % hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        self.path = os.path.join(LOCK_DIR, self.name)
        self.handle = None

    def _open(self):
        try:
            os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
            return open(self.path, "a")
        except OSError:
            self.path = os.path.join(tempfile.gettempdir(), self.name)
            return open(self.path, "a")

    def __enter__(self):
        self.handle = self._open()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self.handle.close()
                    raise BackupError("another backup of '%s' is still running (lock %s held for more than %d s); "
                                      "wait for it to finish or raise lock_timeout" % (self.key, self.path, self.timeout))
                time.sleep(0.2)

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
