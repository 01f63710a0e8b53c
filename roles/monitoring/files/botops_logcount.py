# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Count a bot log's ERROR and CRITICAL lines incrementally, across rotations.

The state of one log is {"inode", "offset", "counts": {level: n}, "partial"}:
the file last read (its inode), how far, the totals so far, and the bytes of a
line not finished yet (counted once its newline arrives). A run reads only what
was appended since the last one:

- same inode, size >= offset: from offset to the end;
- same inode, size < offset, or the bytes just before offset no longer the
  ones read there (truncated, then written past the old offset again): the
  file was truncated (copytruncate): from 0;
- another inode: the file was rotated: the rest of the old file first (found
  among the rotated names by its inode, when it is still there and
  uncompressed), then the new file from 0.

Totals never go down and no line is counted twice. Lines no run could see are
not counted: those of a rotated file compressed before the next run, of a file
rotated away twice between two runs (the one in the middle), and those written
between a run and a copytruncate (they are in the copy only).
"""

import base64
import os
import re
import stat

LEVELS = ("ERROR", "CRITICAL")
LEVEL_RE = re.compile(rb"\b(ERROR|CRITICAL)\b")
CHUNK = 1024 * 1024
MAX_PARTIAL = 64 * 1024  # a "line" longer than this is counted once, by its start
MAX_READ = 256 * 1024 * 1024  # per file and run: a huge backlog is read over several runs


class NotALog(Exception):
    """The path is not a regular file (a symlink, a FIFO, a device): never read."""


def _open(path):
    """The log, opened without following a symlink and without blocking on a FIFO;
    NotALog unless it is a regular file. The collector runs as root in a directory
    the bot can write: the bot must not make it read another file or hang."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the log is a symlink
            raise NotALog("%s is a symlink; a log must be a regular file" % path)
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise NotALog("%s is not a regular file" % path)
    return os.fdopen(fd, "rb"), info


def new_state():
    return {"inode": None, "offset": 0, "counts": {level: 0 for level in LEVELS}, "partial": b"", "tail": b"",
            "skipping": False}


TAIL = 64


def _tail_at(path, offset):
    """The up to TAIL bytes that end at ``offset``."""
    handle, _info = _open(path)
    with handle:
        start = max(0, offset - TAIL)
        handle.seek(start)
        return handle.read(offset - start)


def _count_lines(data, counts):
    for line in data.split(b"\n"):
        found = LEVEL_RE.search(line)
        if found:
            level = found.group(1).decode()
            counts[level] = counts.get(level, 0) + 1


def _read_from(path, offset, state):
    """Count the whole lines of ``path`` from ``offset`` (at most MAX_READ bytes);
    returns the new offset. The start of an overlong line is counted once, and the
    rest of it skipped up to its newline (``skipping``)."""
    handle, _info = _open(path)
    with handle:
        handle.seek(offset)
        limit = offset + MAX_READ
        while offset < limit:
            block = handle.read(min(CHUNK, limit - offset))
            if not block:
                break
            offset += len(block)
            if state.get("skipping"):
                newline = block.find(b"\n")
                if newline < 0:
                    continue
                block, state["skipping"] = block[newline + 1:], False
            data = state["partial"] + block
            head, sep, tail = data.rpartition(b"\n")
            if sep:
                _count_lines(head, state["counts"])
                state["partial"] = tail
            else:
                state["partial"] = data
            if len(state["partial"]) > MAX_PARTIAL:
                _count_lines(state["partial"][:MAX_PARTIAL], state["counts"])
                state["partial"], state["skipping"] = b"", True
    return offset


def _rotated_with_inode(path, inode):
    directory, name = os.path.split(path)
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return None
    for entry in sorted(entries):
        if entry != name and entry.startswith(name) and not entry.endswith((".gz", ".xz", ".zst", ".bz2")):
            full = os.path.join(directory, entry)
            try:
                info = os.lstat(full)
                if stat.S_ISREG(info.st_mode) and info.st_ino == inode:
                    return full
            except OSError:
                continue
    return None


def update(path, state):
    """Bring ``state`` (from new_state or a previous update) up to date with
    ``path``; returns it. A missing log leaves it as it was."""
    try:
        handle, info = _open(path)
        handle.close()
    except FileNotFoundError:
        return state
    if state["inode"] is not None and info.st_ino != state["inode"]:
        old = _rotated_with_inode(path, state["inode"])
        if old:
            _read_from(old, state["offset"], state)
        if state["partial"]:
            _count_lines(state["partial"], state["counts"])  # the old file's last line, newline or not
            state["partial"] = b""
        state["offset"], state["skipping"] = 0, False
    elif info.st_size < state["offset"] or _tail_at(path, state["offset"]) != state.get("tail", b""):
        state["offset"], state["partial"], state["skipping"] = 0, b"", False
    state["inode"] = info.st_ino
    state["offset"] = _read_from(path, state["offset"], state)
    state["tail"] = _tail_at(path, state["offset"])
    return state


def to_json(state):
    """``state`` as JSON-safe values (its bytes as base64)."""
    return dict(state, partial=base64.b64encode(state["partial"]).decode(),
                tail=base64.b64encode(state.get("tail", b"")).decode())


def from_json(value):
    """A state back from ``to_json``; ValueError when it is malformed (the
    collector reports it and starts that log again)."""
    try:
        state = dict(new_state(), **value)
        state["partial"] = base64.b64decode(value.get("partial", ""), validate=True)
        state["tail"] = base64.b64decode(value.get("tail", ""), validate=True)
        if not isinstance(state["skipping"], bool) \
                or not (state["inode"] is None or isinstance(state["inode"], int)) or not isinstance(state["offset"], int) \
                or state["offset"] < 0 or not isinstance(state["counts"], dict) \
                or not all(isinstance(state["counts"].get(level, 0), int) for level in LEVELS):
            raise ValueError("bad state")
        return state
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError("saved state of the log is malformed (%s)" % exc)
