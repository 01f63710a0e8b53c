# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared SQLite mechanisms: open (read-only or read-write), checks, and facts.

Python's own ``sqlite3`` is used, so managed hosts need no sqlite3 CLI. Every
failure is raised as :class:`SqliteError` with a message that names the action,
the file and the cause, ready for ``fail_json``.
"""

import errno
import hashlib
import os
import sqlite3
from urllib.parse import quote

from ansible_collections.botops.runbook.plugins.module_utils._run import ModuleError, describe_os_error

SQLITE_HEADER = b"SQLite format 3\x00"
# SQLite's unix VFS opens paths of at most 512 bytes, and keeps 8 of them for the
# "-journal"/"-wal" names: a longer path fails with "unable to open database file".
MAX_PATH_BYTES = 504


class SqliteError(ModuleError):
    """A failure of SQLite, with a message fit for an operator."""


def quote_ident(name):
    """Quote an identifier for SQLite (double quotes, inner quotes doubled)."""
    return '"%s"' % name.replace('"', '""')


def plain_path(path):
    """``path`` absolute, or SqliteError when it is longer than SQLite opens. (An
    absolute path is also never a URI: this libsqlite3 is built with SQLITE_USE_URI,
    so any name that starts with ``file:`` is one, even without ``uri=True``.)"""
    path = os.path.abspath(path)
    size = len(path.encode("utf-8", "surrogateescape"))
    if size > MAX_PATH_BYTES:
        raise SqliteError("cannot open '%s': the path is %d bytes long and SQLite opens paths of at most %d bytes; "
                          "use a shorter directory or name" % (path, size, MAX_PATH_BYTES))
    return path


def uri(path, mode):
    """A ``file:`` URI of ``path`` opened with ``mode``: the absolute path
    percent-quoted (``?``, ``#``, ``%`` and the rest are the file's own characters)
    behind an empty authority (a path that starts with ``//`` is no host name)."""
    return "file://%s?mode=%s" % (quote(plain_path(path)), mode)


def untrusted_symlink(path):
    """The first symlink on the way to ``path`` (any component, the last one too)
    that lies in a directory someone other than root or this user could change
    (owned by another user, or group- or world-writable): whoever can write that
    directory could point the link at another file. None when there is none."""
    current = os.sep
    for part in [p for p in os.path.abspath(path).split(os.sep) if p]:
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            try:
                holder = os.stat(current)
            except OSError:
                return candidate
            if holder.st_uid not in (0, os.geteuid()) or holder.st_mode & 0o022:
                return candidate
            current = os.path.realpath(candidate)
        else:
            current = candidate
    return None


def check_database_file(path, action="open"):
    """Fail clearly before sqlite3 does: missing file, no permission, not SQLite,
    or a way there through a symlink that someone else could have planted."""
    link = untrusted_symlink(path)
    if link:
        raise SqliteError("cannot %s database '%s': '%s' is a symlink (to '%s') in a directory that another user can "
                          "write, which is not followed: whoever can write there could point it at another file; "
                          "give the database's real path" % (action, path, link, os.path.realpath(link)))
    if not os.path.exists(path):
        raise SqliteError("cannot %s database '%s': the file does not exist; check the path" % (action, path))
    if os.path.isdir(path):
        raise SqliteError("cannot %s database '%s': it is a directory, not a SQLite file" % (action, path))
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise SqliteError("cannot %s database '%s': %s; run as a user that can read it" % (action, path, exc.strerror))
    if header != SQLITE_HEADER:
        if not header:
            why = "the file is empty"
        else:
            why = "the file does not start with the SQLite header (not a SQLite database, or its first page is damaged)"
        raise SqliteError("cannot %s database '%s': %s" % (action, path, why))


def connect(path, readonly=True, busy_timeout=5000):
    """Open ``path``; read-only opens use ``mode=ro`` so a check never writes.

    ``busy_timeout`` is in milliseconds: how long a statement waits for a lock.
    """
    check_database_file(path)
    location = uri(path, "ro" if readonly else "rw")
    try:
        conn = sqlite3.connect(location, uri=True, timeout=busy_timeout / 1000.0, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = %d" % int(busy_timeout))
        # Touch the schema now, so a damaged file fails here with its own message.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise SqliteError("cannot open database '%s': %s" % (path, describe_error(exc)))
    # SQLite opens by name and follows symlinks: one swapped in between the check
    # above and its open would have it read (or write) another file. Checked again
    # now: no untrusted symlink on the way, and the file at the path is the very
    # inode SQLite holds open (a name swapped there and back again is not).
    try:
        seen = None if untrusted_symlink(path) else os.stat(path)
    except OSError:
        seen = None
    if seen is None or not holds_open(seen):
        conn.close()
        raise SqliteError("cannot open database '%s': it was replaced while it was being opened (by a symlink or "
                          "another file); nothing was read; find out what changes it, then run again" % path)
    return conn


def holds_open(info):
    """This process has a descriptor open on the file ``info`` (an lstat) describes."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            other = os.stat("/proc/self/fd/" + fd)
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (info.st_dev, info.st_ino):
            return True
    return False


def describe_error(exc):
    """Turn sqlite3's terse errors into an operator's sentence."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return "%s (another process holds a lock; retry later or raise busy_timeout)" % text
    if "malformed" in text or "not a database" in text:
        return "%s (the file is damaged; restore it from a backup)" % text
    return text


def tune_for_scan(conn):
    """Memory-map the file and enlarge the cache for a whole-file scan.

    integrity_check on a copy runs about twice as fast this way (measured in
    bench/): it reads pages straight from the page cache instead of through
    SQLite's own 2 MB cache.
    """
    conn.execute("PRAGMA mmap_size = %d" % (1 << 30))
    conn.execute("PRAGMA cache_size = -65536")  # KiB: 64 MiB


def pragma(conn, name):
    return conn.execute("PRAGMA %s" % name).fetchone()[0]


def user_tables(conn):
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
        "ORDER BY name"
    ).fetchall()
    return [row[0] for row in rows]


def row_counts(conn):
    """Exact row count of every user table ({name: rows}); None where unreadable."""
    counts = {}
    for name in user_tables(conn):
        try:
            counts[name] = conn.execute("SELECT count(*) FROM %s" % quote_ident(name)).fetchone()[0]
        except sqlite3.Error:
            counts[name] = None  # e.g. a virtual table whose module this Python lacks
    return counts


def schema_hash(conn):
    """sha256 of the schema (every object's type, name and SQL), order-independent."""
    rows = conn.execute(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name"
    ).fetchall()
    digest = hashlib.sha256()
    for row in rows:
        digest.update(("\x1f".join(row) + "\n").encode("utf-8"))
    return digest.hexdigest()


def integrity_check(conn, quick=False, max_problems=100):
    """Run integrity_check or quick_check: (ok, [problem, ...])."""
    name = "quick_check" if quick else "integrity_check"
    try:
        rows = conn.execute("PRAGMA %s(%d)" % (name, int(max_problems))).fetchall()
    except sqlite3.DatabaseError as exc:
        return False, ["%s could not run: %s" % (name, describe_error(exc))]
    problems = [row[0] for row in rows if row[0] != "ok"]
    return not problems, problems


def foreign_key_check(conn, max_problems=100):
    """Orphaned rows: [{table, rowid, parent, fkid}, ...], at most ``max_problems``."""
    problems = []
    cursor = conn.execute("PRAGMA foreign_key_check")
    for table, rowid, parent, fkid in cursor:
        problems.append({"table": table, "rowid": rowid, "parent": parent, "fkid": fkid})
        if len(problems) >= max_problems:
            break
    return problems


def facts(conn, path, with_rows=True):
    """What a check, a backup manifest and monitoring all report about a database."""
    result = {
        "size": os.path.getsize(path),
        "page_size": pragma(conn, "page_size"),
        "page_count": pragma(conn, "page_count"),
        "freelist_count": pragma(conn, "freelist_count"),
        "journal_mode": pragma(conn, "journal_mode"),
        "schema_hash": schema_hash(conn),
        "sqlite_version": sqlite3.sqlite_version,
    }
    if with_rows:
        result["tables"] = row_counts(conn)
    return result


def describe_failure(exc, action, path):
    """The operator's sentence for a failure of SQLite or of the file system while
    ``action`` wrote ``path``."""
    if isinstance(exc, OSError):
        return describe_os_error(exc, action, path)
    if "disk is full" in str(exc):  # SQLite's word for ENOSPC while writing
        return describe_os_error(OSError(errno.ENOSPC, str(exc)), action, path)
    return "%s failed: %s; nothing was kept under '%s'" % (action, describe_error(exc), path)


def switch_to_wal(path, busy_timeout):
    """Set ``path`` to WAL (persistent): backups then never block the bot."""
    conn = connect(path, readonly=False, busy_timeout=busy_timeout)
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.Error as exc:
        raise SqliteError("cannot switch database '%s' to WAL: %s" % (path, describe_error(exc)))
    finally:
        conn.close()
    if mode != "wal":
        raise SqliteError("cannot switch database '%s' to WAL: SQLite kept journal mode '%s'" % (path, mode))
    return mode


def explain(action):
    """For ``run_main``: a sqlite3 error met while doing ``action``, in words."""
    return lambda exc: "%s failed: %s" % (action, describe_error(exc)) if isinstance(exc, sqlite3.Error) else None


def check_copy(path, quick):
    """A backup copy checked (quick_check or integrity_check) read-only, memory-mapped:
    (ok, problems, facts), facts only when it is sound."""
    conn = sqlite3.connect(uri(path, "ro"), uri=True)
    try:
        tune_for_scan(conn)
        ok, problems = integrity_check(conn, quick=quick)
        return ok, problems, facts(conn, path) if ok else {}
    finally:
        conn.close()
