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

LEVELS = ("ERROR", "CRITICAL")
LEVEL_RE = re.compile(rb"\b(ERROR|CRITICAL)\b")
CHUNK = 1024 * 1024
MAX_PARTIAL = 64 * 1024  # a "line" longer than this is counted by its start


def new_state():
    return {"inode": None, "offset": 0, "counts": {level: 0 for level in LEVELS}, "partial": b"", "tail": b""}


TAIL = 64


def _tail_at(path, offset):
    """The up to TAIL bytes that end at ``offset``."""
    with open(path, "rb") as handle:
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
    """Count the whole lines of ``path`` from ``offset``; returns the new offset."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        while True:
            block = handle.read(CHUNK)
            if not block:
                break
            offset += len(block)
            data = state["partial"] + block
            head, sep, tail = data.rpartition(b"\n")
            if sep:
                _count_lines(head, state["counts"])
                state["partial"] = tail
            else:
                state["partial"] = data
            if len(state["partial"]) > MAX_PARTIAL:
                _count_lines(state["partial"][:MAX_PARTIAL], state["counts"])
                state["partial"] = b""
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
                if os.stat(full).st_ino == inode:
                    return full
            except OSError:
                continue
    return None


def update(path, state):
    """Bring ``state`` (from new_state or a previous update) up to date with
    ``path``; returns it. A missing log leaves it as it was."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return state
    if state["inode"] is not None and info.st_ino != state["inode"]:
        old = _rotated_with_inode(path, state["inode"])
        if old:
            _read_from(old, state["offset"], state)
        if state["partial"]:
            _count_lines(state["partial"], state["counts"])  # the old file's last line, newline or not
            state["partial"] = b""
        state["offset"] = 0
    elif info.st_size < state["offset"] or _tail_at(path, state["offset"]) != state.get("tail", b""):
        state["offset"], state["partial"] = 0, b""
    state["inode"] = info.st_ino
    state["offset"] = _read_from(path, state["offset"], state)
    state["tail"] = _tail_at(path, state["offset"])
    return state


def to_json(state):
    """``state`` as JSON-safe values (its bytes as base64)."""
    return dict(state, partial=base64.b64encode(state["partial"]).decode(),
                tail=base64.b64encode(state.get("tail", b"")).decode())


def from_json(value):
    """A state back from ``to_json``; anything malformed is a new state (the
    counts then start again from this run: reported by the collector)."""
    try:
        state = dict(new_state(), **value)
        state["partial"] = base64.b64decode(value.get("partial", ""), validate=True)
        state["tail"] = base64.b64decode(value.get("tail", ""), validate=True)
        if not (state["inode"] is None or isinstance(state["inode"], int)) or not isinstance(state["offset"], int) \
                or state["offset"] < 0 or not isinstance(state["counts"], dict) \
                or not all(isinstance(state["counts"].get(level, 0), int) for level in LEVELS):
            raise ValueError("bad state")
        return state
    except (TypeError, ValueError, AttributeError):
        return new_state()
