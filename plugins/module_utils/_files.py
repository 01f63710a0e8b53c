# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files a backup writes: private temp files beside their final name, fsync and
atomic rename, and checksums."""

import hashlib
import os
import re
import tempfile

from ansible_collections.botops.runbook.plugins.module_utils._run import ModuleError

CHUNK = 1024 * 1024


class BackupError(ModuleError):
    """A failure of a backup set, with a message fit for an operator."""


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_temp(final_path):
    """(descriptor, path): a new 0600 file under a unique, hidden name beside
    ``final_path`` (same filesystem, so rename is atomic): ``.<name>.XXXXXXXX.tmp``."""
    directory, name = os.path.split(final_path)
    return tempfile.mkstemp(prefix=".%s." % name, suffix=".tmp", dir=directory or ".")


def temp_path(final_path):
    """A unique, hidden name beside ``final_path`` (see ``_make_temp``)."""
    fd, path = _make_temp(final_path)
    os.close(fd)  # mkstemp created it 0600; writers reopen it
    return path


def publish(temp, final_path):
    """fsync ``temp``, rename it over ``final_path``, fsync the directory."""
    with open(temp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, final_path)
    fsync_dir(os.path.dirname(final_path) or ".")


def remove_quietly(*paths):
    """Unlink each of ``paths`` that exists; how many were removed."""
    removed = 0
    for path in paths:
        if path:
            try:
                os.unlink(path)
                removed += 1
            except OSError:
                pass
    return removed


def check_destination_dir(directory, needed_bytes):
    """Fail before writing anything: directory exists, is writable, has room."""
    if not os.path.isdir(directory):
        raise BackupError("destination directory '%s' does not exist; create it first (mode 0700)" % directory)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise BackupError("destination directory '%s' is not writable by this user" % directory)
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    if free < needed_bytes:
        raise BackupError("not enough free space in '%s': %d bytes free, about %d needed; free space or choose "
                          "another destination" % (directory, free, needed_bytes))
    return free


class HashingWriter:
    """File-like sink that counts and hashes what passes through to ``handle``."""

    def __init__(self, handle):
        self.handle = handle
        self.size = 0
        self.digest = hashlib.sha256()

    def write(self, data):
        self.digest.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def flush(self):
        self.handle.flush()

    @property
    def sha256(self):
        return self.digest.hexdigest()


def makedirs_private(path):
    """Create `path` and every missing parent with mode 0700 (os.makedirs gives only
    the last one its mode: the parents it creates get 0777 minus the umask, so a
    backup tree made by its first backup would be open to every user)."""
    missing = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise


def write_text_atomically(path, text, mode):
    """Replace ``path`` with ``text`` (temp file beside it, fsync, rename): readers
    see the old file or the new one, never a part. The temp file is written,
    chmodded and fsynced through the descriptor ``mkstemp`` opened, never reopened
    by a name that someone else could have replaced meanwhile. The rename is by
    name: ``path`` must be in a directory only its writers can write (the ledger
    in the root-owned bot root, manifests in the 0700 backup directory)."""
    fd, temp = _make_temp(path)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temp, path)
        fsync_dir(os.path.dirname(path) or ".")
    except BaseException:
        remove_quietly(temp)
        raise


def sweep_temps(path):
    """Remove what killed writers of ``path`` left: the ``.<name>.XXXXXXXX.tmp``
    files (``mkstemp``'s eight random characters) that ``_make_temp`` makes
    beside it, and nothing else (not the temp
    files of a neighbour whose name starts with this one's). Call it only
    holding the lock every writer of ``path`` takes. The names removed."""
    directory, name = os.path.split(path)
    if not name:
        raise BackupError("'%s' names a directory, not a file" % path)
    directory = directory or "."
    own = re.compile(r"\A\.%s\.[a-z0-9_]{8}\.tmp\Z" % re.escape(name))
    removed = []
    for entry in sorted(os.listdir(directory)):
        if own.match(entry):
            full = os.path.join(directory, entry)
            if not os.path.isdir(full) and remove_quietly(full):
                removed.append(entry)
    if removed:
        fsync_dir(directory)
    return removed
