# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An strace log turned into file-system events, for the durability tests.

A killed process leaves the page cache behind, so a kill test cannot see a
missing fsync; a power cut can. What survives a power cut depends on the order
of the writes, fsyncs and renames a run made, which strace records:
``strace_argv(log)`` is the command prefix (``-f``: children and threads too;
``-y``: every file descriptor with the path it names), ``Trace.read(log)`` the
log as a list of ``Event``, in the order the calls completed.

Each event has the half-open span ``[start, end]`` of log lines it occupied:
with ``-f`` a call of one thread may be ``<unfinished ...>`` while others run,
then ``<... resumed>``; ``a.before(b)`` holds only when ``a`` had returned before
``b`` was entered, whatever the interleaving.

Paths are absolute and normalised: the kernel's own name for a descriptor (the
``-y`` annotation) where strace printed one, else the parser's table of what
each descriptor names (per process; threads and ``CLONE_FILES`` children share
one table, a forked child gets a copy), a relative name joined to its directory
descriptor or working directory, and ``/proc/<pid>/fd/<n>/...`` (how a private
staging directory is named) resolved through that table.
"""

import os
import re

# The calls a durability check needs; "?" lets strace skip one this architecture lacks.
TRACED = (
    "?open", "openat", "?openat2", "?creat",
    "write", "pwrite64", "writev", "pwritev", "pwritev2", "?ftruncate", "?truncate", "fallocate",
    "?sendfile", "copy_file_range", "splice",
    "fsync", "fdatasync", "sync", "syncfs",
    "?rename", "renameat", "renameat2", "?unlink", "unlinkat", "?rmdir", "?mkdir", "mkdirat",
    "?link", "linkat", "?symlink", "symlinkat",
    "close", "dup", "?dup2", "dup3", "fcntl",
    "clone", "clone3", "?fork", "?vfork", "execve", "chdir", "fchdir",
)

AT_FDCWD = "AT_FDCWD"
WRITES = {"write": 0, "pwrite64": 0, "writev": 0, "pwritev": 0, "pwritev2": 0, "ftruncate": 0, "fallocate": 0,
          "sendfile": 0, "copy_file_range": 2, "splice": 2}  # call: which argument is the written fd
SYNCS = ("fsync", "fdatasync")
_PID = re.compile(r"^(\d+)\s+(.*)$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_UNFINISHED = " <unfinished ...>"
_CALL = re.compile(r"^(\w+)\(")
_RESULT = re.compile(r"^\s*=\s*(-?\d+|0x[0-9a-fA-F]+|\?)")
_ERRNO = re.compile(r"^\s*([A-Z][A-Z0-9_]+)")
_PROC_FD = re.compile(r"^/proc/(self|thread-self|\d+)/fd/(\d+)(/.*)?$")
_FD = re.compile(r"^(-?\d+|AT_FDCWD)$")
_SIMPLE_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "f": b"\f", "v": b"\v", "a": b"\a", "b": b"\b",
                   "e": b"\x1b", "\\": b"\\", '"': b'"', "'": b"'", "<": b"<", ">": b">", "?": b"?"}


class ParseError(ValueError):
    """A line that is not strace's: names the line."""


def strace_argv(log, strace="strace"):
    """The command prefix that records a run's calls into ``log``."""
    return [strace, "-f", "-qq", "-y", "-s", "0", "-e", "signal=none", "-e", "trace=" + ",".join(TRACED),
            "-o", log]


def unescape(text):
    """strace's C escapes (``\\n``, ``\\"``, ``\\303``, ``\\x41``) as the path they stand for."""
    out = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\" or i + 1 == len(text):
            out += char.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = text[i + 1]
        if nxt in "01234567":
            j = i + 1
            while j < len(text) and j < i + 4 and text[j] in "01234567":
                j += 1
            out.append(int(text[i + 1:j], 8) & 0xFF)
            i = j
        elif nxt == "x" and re.match(r"[0-9a-fA-F]{2}", text[i + 2:i + 4]):
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        else:
            out += _SIMPLE_ESCAPES.get(nxt, ("\\" + nxt).encode("utf-8", "surrogateescape"))
            i += 2
    return os.fsdecode(bytes(out))


def _scan_quoted(text, i, close):
    """Index just past the unescaped ``close`` that ends the token opened at ``text[i]``."""
    i += 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == close:
            return i + 1
        i += 1
    raise ValueError("unterminated %r" % close)


def split_call(text):
    """(name, [argument texts], the text after the closing parenthesis)."""
    match = _CALL.match(text)
    if not match:
        raise ValueError("not a call")
    args, depth, i, begin = [], 0, match.end(), match.end()
    while i < len(text):
        char = text[i]
        if char == '"':
            i = _scan_quoted(text, i, '"')
            continue
        if char == "<":
            i = _scan_quoted(text, i, ">")
            continue
        if char == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            if depth == 0 and char == ")":
                last = text[begin:i].strip()
                if last or args:
                    args.append(last)
                return match.group(1), args, text[i + 1:]
            depth -= 1
        elif char == "," and depth == 0:
            args.append(text[begin:i].strip())
            begin = i + 1
        i += 1
    raise ValueError("no closing parenthesis")


def annotated(text):
    """(value, path or None) of ``3</tmp/x>`` or ``AT_FDCWD</tmp>``; ``(deleted)`` kept in the path."""
    cut = text.find("<")
    if cut < 0 or not text.endswith(">"):
        return text.strip(), None
    return text[:cut].strip(), unescape(text[cut + 1:-1])


def string_arg(text):
    """The string a ``"..."`` argument holds (None for NULL or a non-string)."""
    text = text.strip()
    if not text.startswith('"'):
        return None
    end = _scan_quoted(text, 0, '"')
    return unescape(text[1:end - 1])


class Call:
    """One completed (or never completed) system call, as strace printed it."""

    def __init__(self, pid, name, args, start, end, result=None, errno=None, result_path=None):
        self.pid, self.name, self.args = pid, name, args
        self.start, self.end = start, end
        self.result, self.errno, self.result_path = result, errno, result_path

    def __repr__(self):
        return "Call(%d %s(%s) = %r, lines %d-%d)" % (
            self.pid, self.name, ", ".join(self.args), self.result, self.start, self.end)


def parse_result(text):
    """(result, errno, the path annotating the result) of ``= 3</x>`` or ``= -1 ENOENT (...)``."""
    match = _RESULT.match(text)
    if not match:
        return None, None, None
    value = match.group(1)
    rest = text[match.end():]
    path = None
    if rest.startswith("<"):
        end = _scan_quoted(rest, 0, ">")
        path = unescape(rest[1:end - 1])
        rest = rest[end:]
    if value == "?":
        return None, None, None
    number = int(value, 16) if value.startswith("0x") else int(value)
    errno_match = _ERRNO.match(rest) if number < 0 else None
    return number, errno_match.group(1) if errno_match else None, path


def calls(lines):
    """The calls of a log, in the order they completed; ``<unfinished ...>`` and
    ``<... resumed>`` halves joined; signals, exits and blank lines skipped. A call
    that never resumed (its process was killed) comes last, with result None."""
    pending = {}
    done = []
    for number, raw in enumerate(lines):
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        match = _PID.match(line)
        pid, rest = (int(match.group(1)), match.group(2)) if match else (0, line)
        if rest.startswith(("---", "+++", "<detached")):
            continue
        resumed = _RESUMED.match(rest)
        if resumed:
            if pid not in pending:
                continue  # its first half was before the log began
            start, head = pending.pop(pid)
            rest = head + resumed.group(2)
        else:
            start = number
        if rest.endswith(_UNFINISHED):
            pending[pid] = (start, rest[:-len(_UNFINISHED)])
            continue
        try:
            name, args, tail = split_call(rest)
        except ValueError as exc:
            raise ParseError("line %d of the strace log: %s: %r" % (number + 1, exc, line))
        result, errno, path = parse_result(tail)
        done.append(Call(pid, name, args, start, number, result, errno, path))
    for pid, (start, head) in sorted(pending.items(), key=lambda item: item[1][0]):
        try:
            name, args, dummy = split_call(head + ")")
        except ValueError:
            continue
        done.append(Call(pid, name, args, start, start, None, "UNFINISHED", None))
    return done


class Fd:
    """What a descriptor names: its path and whether it was opened O_DIRECTORY."""

    def __init__(self, path, directory=False, cloexec=False):
        self.path, self.directory, self.cloexec = path, directory, cloexec

    def copy(self, cloexec=False):
        return Fd(self.path, self.directory, cloexec)


class Event:
    """A file-system step: ``kind`` is open, write, sync, sync-all, rename, link,
    symlink, unlink, rmdir, mkdir or close; ``path`` what it acts on (for a
    rename or link the old name, ``target`` the new one); ``directory``: the
    descriptor was opened O_DIRECTORY (None when the parser cannot know)."""

    def __init__(self, call, kind, path=None, target=None, fd=None, directory=None, flags=()):
        self.call, self.kind, self.path, self.target = call, kind, path, target
        self.fd, self.directory, self.flags = fd, directory, tuple(flags)
        self.pid, self.start, self.end, self.name = call.pid, call.start, call.end, call.name
        self.ok = call.result is not None and call.result >= 0

    def before(self, other):
        """This call returned before ``other`` was entered."""
        return self.end < other.start

    def __repr__(self):
        return "<%s %s %s%s%s, pid %d, lines %d-%d%s>" % (
            self.kind, self.name, self.path, " -> %s" % self.target if self.target else "",
            " (dir)" if self.directory else "", self.pid, self.start + 1, self.end + 1, "" if self.ok else " FAILED")


def _flags(text):
    return set(part.strip() for part in text.split("|"))


def _strip_deleted(path):
    if path is not None and path.endswith(" (deleted)"):
        return None  # a file with no name any more: nothing a name-based check can match
    return path


def _normal(path):
    """A descriptor's path normalised; ``pipe:[12]``, ``socket:[3]`` and the like kept as they are."""
    return os.path.normpath(path) if path and path.startswith("/") else path


class Trace:
    """The events of one strace log; ``cwd``: the traced command's working directory."""

    def __init__(self, lines, cwd=None):
        self.tables = {}  # pid -> {fd: Fd}, shared by reference between threads
        self.cwds = {}
        self.cwd = cwd
        self.calls = calls(lines)
        self.events = []
        for call in self.calls:
            self._apply(call)

    @classmethod
    def read(cls, path, cwd=None):
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return cls(handle.readlines(), cwd=cwd)

    # -- the state a path is resolved against ---------------------------------
    def table(self, pid):
        if pid not in self.tables:
            self.tables[pid] = {}
        return self.tables[pid]

    def fd_path(self, pid, text):
        """(fd or AT_FDCWD, path) of a descriptor argument: the annotation, else the table."""
        value, path = annotated(text)
        if not _FD.match(value):
            return None, None
        if value == AT_FDCWD:
            if path is not None:
                self.cwds[pid] = path
            return AT_FDCWD, path if path is not None else self.cwds.get(pid, self.cwd)
        fd = int(value)
        if path is None and fd in self.table(pid):
            path = self.table(pid)[fd].path
        return fd, _strip_deleted(path)

    def _proc_fd(self, pid, path):
        match = _PROC_FD.match(path)
        if not match:
            return path
        owner = pid if match.group(1) in ("self", "thread-self") else int(match.group(1))
        entry = self.tables.get(owner, {}).get(int(match.group(2)))
        if entry is None or entry.path is None:
            return path
        return entry.path + (match.group(3) or "")

    def resolve(self, pid, name, base=None):
        """The absolute path of ``name`` (relative ones against ``base``, else the cwd)."""
        if name is None:
            return None
        if not name.startswith("/"):
            base = base if base is not None else self.cwds.get(pid, self.cwd)
            if base is None:
                return os.path.normpath(name)
            name = os.path.join(base, name)
        return os.path.normpath(self._proc_fd(pid, os.path.normpath(name)))

    def _fd_name(self, pid, path):
        """A descriptor's path, ``/proc/<pid>/fd/<n>`` resolved (the kernel prints real paths anyway)."""
        return self._proc_fd(pid, _normal(path)) if path and path.startswith("/") else path

    def at(self, pid, dirfd_text, name_text):
        """The path of a (dirfd, name) pair of arguments."""
        dummy, base = self.fd_path(pid, dirfd_text)
        return self.resolve(pid, string_arg(name_text), base)

    def _entry(self, pid, text):
        value, dummy = annotated(text)
        entry = self.table(pid).get(int(value)) if re.match(r"^\d+$", value) else None
        return entry

    # -- one call -------------------------------------------------------------
    def _emit(self, *args, **kwargs):
        self.events.append(Event(*args, **kwargs))

    def _apply(self, call):  # pylint: disable=too-many-branches,too-many-statements
        pid, name, args, ok = call.pid, call.name, call.args, call.result is not None and call.result >= 0
        if name in ("open", "creat", "openat", "openat2"):
            if name == "open":
                path, flags = self.resolve(pid, string_arg(args[0])), _flags(args[1]) if len(args) > 1 else set()
            elif name == "creat":
                path, flags = self.resolve(pid, string_arg(args[0])), {"O_CREAT", "O_WRONLY", "O_TRUNC"}
            else:
                path = self.at(pid, args[0], args[1])
                flags = _flags(args[2]) if name == "openat" else _flags(re.sub(r"^\{flags=|[,}].*$", "", args[2]))
            if ok:
                path = self._fd_name(pid, _strip_deleted(call.result_path)) if call.result_path else path
                self.table(pid)[call.result] = Fd(path, "O_DIRECTORY" in flags, "O_CLOEXEC" in flags)
            self._emit(call, "open", path, fd=call.result if ok else None, directory="O_DIRECTORY" in flags,
                       flags=sorted(flags))
        elif name in WRITES:
            position = WRITES[name]
            if len(args) > position:
                fd, path = self.fd_path(pid, args[position])
                entry = self._entry(pid, args[position])
                self._emit(call, "write", self._fd_name(pid, path), fd=fd,
                           directory=entry.directory if entry else None)
        elif name == "truncate":
            self._emit(call, "write", self.resolve(pid, string_arg(args[0])))
        elif name in SYNCS:
            fd, path = self.fd_path(pid, args[0])
            entry = self._entry(pid, args[0])
            self._emit(call, "sync", self._fd_name(pid, path), fd=fd,
                       directory=entry.directory if entry else None)
        elif name in ("sync", "syncfs"):
            self._emit(call, "sync-all")
        elif name in ("rename", "renameat", "renameat2", "link", "linkat"):
            if name in ("rename", "link"):
                old, new = self.resolve(pid, string_arg(args[0])), self.resolve(pid, string_arg(args[1]))
            else:
                old, new = self.at(pid, args[0], args[1]), self.at(pid, args[2], args[3])
            flags = _flags(args[4]) if len(args) > 4 else set()
            if ok and name.startswith("rename") and "RENAME_EXCHANGE" not in flags:
                self._moved(old, new)
            self._emit(call, "rename" if name.startswith("rename") else "link", old, target=new, flags=sorted(flags))
        elif name in ("symlink", "symlinkat"):
            target = string_arg(args[0])
            link = self.resolve(pid, string_arg(args[1])) if name == "symlink" else self.at(pid, args[1], args[2])
            self._emit(call, "symlink", link, target=target)
        elif name in ("unlink", "rmdir", "unlinkat"):
            if name == "unlinkat":
                path, removedir = self.at(pid, args[0], args[1]), len(args) > 2 and "AT_REMOVEDIR" in _flags(args[2])
            else:
                path, removedir = self.resolve(pid, string_arg(args[0])), name == "rmdir"
            if ok:
                self._moved(path, None)
            self._emit(call, "rmdir" if removedir else "unlink", path)
        elif name in ("mkdir", "mkdirat"):
            path = self.resolve(pid, string_arg(args[0])) if name == "mkdir" else self.at(pid, args[0], args[1])
            self._emit(call, "mkdir", path)
        elif name == "close":
            fd, path = self.fd_path(pid, args[0])
            entry = self._entry(pid, args[0])
            if ok and isinstance(fd, int):
                self.table(pid).pop(fd, None)
            self._emit(call, "close", self._fd_name(pid, path), fd=fd,
                       directory=entry.directory if entry else None)
        elif name in ("dup", "dup2", "dup3") or (name == "fcntl" and len(args) > 1 and "F_DUPFD" in args[1]):
            entry = self._entry(pid, args[0])
            dummy, path = annotated(args[0])
            if ok:
                cloexec = "O_CLOEXEC" in args[2] if name == "dup3" else "F_DUPFD_CLOEXEC" in args[1]
                copy = entry.copy(cloexec) if entry else Fd(self._fd_name(pid, _strip_deleted(path)), None, cloexec)
                self.table(pid)[call.result] = copy
        elif name == "fcntl" and len(args) > 2 and "F_SETFD" in args[1]:
            entry = self._entry(pid, args[0])
            if entry is not None:
                entry.cloexec = "FD_CLOEXEC" in args[2]
        elif name in ("clone", "clone3", "fork", "vfork"):
            if ok and call.result > 0:
                self._clone(pid, call.result, "CLONE_FILES" in " ".join(args))
        elif name == "execve" and ok:
            self.tables[pid] = {fd: entry for fd, entry in self.table(pid).items() if not entry.cloexec}
        elif name in ("chdir", "fchdir") and ok:
            if name == "chdir":
                self.cwds[pid] = self.resolve(pid, string_arg(args[0]))
            else:
                dummy, path = self.fd_path(pid, args[0])
                if path:
                    self.cwds[pid] = path

    def _moved(self, old, new):
        """Descriptors follow a rename (their file's new name; the file it replaced
        has none) and an unlink (no name)."""
        if old is None or old == new:
            return
        entries = [e for t in {id(t): t for t in self.tables.values()}.values() for e in t.values() if e.path]
        if new is not None:
            for entry in entries:
                if entry.path == new or entry.path.startswith(new + "/"):
                    entry.path = None
        for entry in entries:
            if entry.path is None:
                continue
            if entry.path == old:
                entry.path = new
            elif new is not None and entry.path.startswith(old + "/"):
                entry.path = new + entry.path[len(old):]

    def _clone(self, parent, child, shared):
        """The child's table: the parent's own (CLONE_FILES) or a copy; entries the
        child made before strace showed the clone return are kept."""
        early = self.tables.get(child, {})
        if shared:
            table = self.table(parent)
            table.update(early)
        else:
            table = {fd: entry.copy(entry.cloexec) for fd, entry in self.table(parent).items()}
            table.update(early)
        self.tables[child] = table
        if child not in self.cwds and parent in self.cwds:
            self.cwds[child] = self.cwds[parent]

    # -- queries --------------------------------------------------------------
    def of(self, kind, path=None, target=None, ok=True):
        """The events of ``kind`` (on ``path``, to ``target``), successful ones by default."""
        return [e for e in self.events if e.kind == kind and (path is None or e.path == path)
                and (target is None or e.target == target) and (ok is None or e.ok == ok)]
