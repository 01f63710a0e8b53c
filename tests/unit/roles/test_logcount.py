# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collector's log-line counter against any sequence of writes, rotations
(rename, then a new file), copytruncate truncations and runs: the totals equal
the lines the log held at some run, never fewer, never more."""

import itertools
import json
import os
import sys

from hypothesis import given, settings, strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "monitoring", "files"))
import botops_logcount  # noqa: E402 pylint: disable=wrong-import-position

LINE = st.tuples(st.sampled_from(["ERROR", "CRITICAL", "INFO", "WARNING", "ERRORS", "debug"]),
                 st.text(alphabet="ab \t:", max_size=20))
OPS = st.lists(st.one_of(
    st.tuples(st.just("write"), st.lists(LINE, max_size=5), st.booleans()),
    st.tuples(st.just("run")),
    st.tuples(st.just("rotate"), st.booleans()),
    st.tuples(st.just("truncate")),
), max_size=30)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_counts_every_line_once(tmp_path_factory, ops):
    directory = str(tmp_path_factory.mktemp("log"))
    log = os.path.join(directory, "bot.log")
    state = botops_logcount.new_state()
    expected = {"ERROR": 0, "CRITICAL": 0}
    unseen = {"ERROR": 0, "CRITICAL": 0}  # written since the last run, into the current file
    open(log, "w").close()
    botops_logcount.update(log, state)  # the collector has met the log before anything is written
    rotations, rotated_since_run = 0, False
    serial = itertools.count()
    for op in ops:
        if op[0] == "write":
            with open(log, "a") as handle:
                # a line number, as a log's timestamps: no two lines alike
                text = "\n".join("%d %s %s" % (next(serial), level, rest) for level, rest in op[1])
                handle.write(text + ("\n" if op[1] else ""))
            for level, dummy in op[1]:
                if level in unseen:
                    unseen[level] += 1
        elif op[0] == "run":  # each run a new process: the state through JSON
            state = botops_logcount.from_json(json.loads(json.dumps(botops_logcount.to_json(state))))
            botops_logcount.update(log, state)
            rotated_since_run = False
            for level in unseen:
                expected[level] += unseen[level]
                unseen[level] = 0
        elif op[0] == "rotate":  # rename, new file; the old one kept uncompressed (or compressed: lost to us)
            rotations += 1
            os.rename(log, log + ".%d%s" % (rotations, ".gz" if op[1] else ""))
            open(log, "w").close()
            if op[1] or rotated_since_run:
                # compressed before the next run, or a second rotation between two
                # runs: lines no run saw are not counted (documented)
                unseen = {"ERROR": 0, "CRITICAL": 0}
            else:
                for level in unseen:
                    expected[level] += unseen[level]
                    unseen[level] = 0
            rotated_since_run = True
        else:  # copytruncate: what was written since the last run is in the copy only
            os.truncate(log, 0)
            unseen = {"ERROR": 0, "CRITICAL": 0}
    botops_logcount.update(log, state)
    for level in unseen:
        expected[level] += unseen[level]
    assert state["counts"] == expected


@given(st.one_of(st.none(), st.integers(), st.text(), st.lists(st.integers()),
                 st.dictionaries(st.sampled_from(["inode", "offset", "counts", "partial", "tail", "x"]),
                                 st.one_of(st.none(), st.integers(), st.text(), st.dictionaries(st.text(), st.integers())))))
def test_a_malformed_state_is_refused_or_sound(value):
    """Any saved value either loads as a sound state or is refused with ValueError
    (the collector reports it and starts the log again); never a crash elsewhere."""
    try:
        state = botops_logcount.from_json(value)
    except ValueError:
        return
    assert set(state) >= {"inode", "offset", "counts", "partial", "tail", "skipping"}
    assert isinstance(state["offset"], int) and state["offset"] >= 0


def test_a_symlinked_or_special_log_is_never_read(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("ERROR root only\n")
    (tmp_path / "link.log").symlink_to(secret)
    os.mkfifo(str(tmp_path / "fifo.log"))
    for name in ("link.log", "fifo.log"):
        try:
            botops_logcount.update(str(tmp_path / name), botops_logcount.new_state())
        except botops_logcount.NotALog as exc:
            assert name in str(exc)
        else:
            raise AssertionError("%s was read" % name)


def test_an_overlong_line_is_counted_once(tmp_path):
    log = tmp_path / "bot.log"
    log.write_bytes(b"ERROR " + b"x" * (3 * 1024 * 1024) + b"\nCRITICAL next\n")
    state = botops_logcount.update(str(log), botops_logcount.new_state())
    assert state["counts"] == {"ERROR": 1, "CRITICAL": 1}
    with open(str(log), "ab") as handle:
        handle.write(b"ERROR " + b"y" * (2 * 1024 * 1024))
    state = botops_logcount.update(str(log), state)
    with open(str(log), "ab") as handle:
        handle.write(b"y" * 100 + b" ERROR still the same line\nERROR a new one\n")
    state = botops_logcount.update(str(log), state)
    assert state["counts"] == {"ERROR": 3, "CRITICAL": 1}
