# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
r"""Adversarial names: every module that takes a name or a path, run with names
holding each character that has a meaning to a layer the name travels into.

Each module must work with the name (the right object: the right file, the right
database, the right tables, files only inside dest_dir/backup_root, a manifest
and a catalog that name them), or refuse it clearly (the message names the object
and why) and write nothing. Never a traceback.

The crossings (layer: characters with a meaning there -> how the code handles it):

- SQLite URI (``_sqlite.connect``, ``_sqlite.check_copy``): ``file:`` opens a URI;
  ``?`` starts the query (``mode=ro`` lives there), ``#`` the fragment, ``%XX`` is
  decoded, a path that starts with ``//`` gives an authority (``//tmp/x``: "invalid
  uri authority: tmp") -> ``_sqlite.uri``: the absolute path percent-quoted
  (``urllib.parse.quote``) behind ``file://`` (an empty authority).
- SQLite file names without ``uri=True`` (``sqlite3.connect(copy)``, ``VACUUM INTO``,
  which ATTACHes its file): this libsqlite3 is built with SQLITE_USE_URI, so a name
  that starts with ``file:`` is a URI even there -> safe because the copies are
  ``tempfile.mkstemp`` paths, always absolute (a relative ``file:out#x`` dest_dir is
  tested); sqlite_restore's copies likewise (a WorkDir ``/proc/<pid>/fd/<n>`` path or
  ``temp_path``).
- SQLite path length: the unix VFS opens at most 512 bytes less 8 for ``-journal``
  (504) and said only "unable to open database file" -> ``_sqlite.plain_path``
  refuses a longer path by name, before SQLite is asked.
- sqlite_restore: ``check_restored`` opened ``"file:%s?mode=ro" % path`` unquoted:
  with ``#``, ``?``, a ``%XX`` or a leading ``//`` in the database's path it checked
  another file (``#``: an empty one it created, and the check passed) or failed
  after the swap -> ``_sqlite.uri`` there too.
- SQLite SQL: table names go into ``SELECT count(*) FROM "<name>"`` (``"`` doubled by
  ``quote_ident``); the user-table filter ``NOT LIKE 'sqlite_%'`` took ``_`` for a
  wildcard and hid tables such as ``sqlite-data`` or ``sqlite1`` from every row
  count -> ``NOT LIKE 'sqlite\_%' ESCAPE '\'``.
- File and directory names built from a bot or database name (``_series``,
  ``_manifest.backup_name``, ``_files.temp_path``, ``_lock.lock_path_beside``):
  ``/``, ``..``, a leading ``.`` (hidden, temporary and lock names), NUL and newline
  -> ``_series.check_component`` refuses them by name; its advice said "give dest_dir
  instead of backup_root", which cannot help (the series is named after the bot and
  database whatever the destination) -> it now says what does (rename the database,
  choose another bot name or leave bot unset), and BackupSetWriter checks the whole
  series before anything is written. 200-character names fit with every suffix.
- Ansible ``type=path`` options (path, src, dest, dest_dir, backup_root, root):
  Ansible expands ``$VAR``/``${VAR}`` (and a leading ``~``) before the module runs,
  with no escape (``$(...)`` and backticks are left alone). A path holding ``$HOME``
  cannot be given to any Ansible module; the module then names the expanded path,
  which must exist (tested: refused, nothing written). But a set named after a bot or
  database ``$HOME.x`` was written fine and could then never be given back (src of a
  restore, the roles' dest_dir of series.id), and ``load_file_common_arguments``
  expanded its temporary names too (the backup failed: "No such file") -> a new set's
  bot and database names may not hold an expandable ``$VAR``
  (``_series.check_addressable``); sets on disk are still read.
- argv of ``module.run_command`` (``_run.run_command``: pg_dump/pg_restore of
  directory dumps, age): Ansible expanded ``~`` and ``$VAR`` in every argument, so
  ``--table="$HOME"."$HOME"`` reached pg_dump as ``"/root"."/root"`` ->
  ``expand_user_and_vars=False``.
- argv, a leading ``-`` (option injection): database names never go on a command
  line (PGDATABASE, or inside ``--dbname=``), table patterns are ``--table=X``,
  outputs ``--file=X``/``--output X``; positional paths: pg_restore's dump (directory
  format) and age's encrypted input were given as typed, so a relative
  ``-a_<time>.dir`` became options -> ``os.path.abspath``. (age's encryption input is
  a mkstemp path, always absolute.)
- libpq connection strings: psycopg2 keyword arguments and PGDATABASE are taken
  literally; ``pg_restore --dbname=X`` expands X as a connection string when it holds
  ``=`` or starts with ``postgresql://`` (a restore into ``dbname=postgres (r)`` was
  "invalid connection option", one into ``dbname=postgres`` would go into postgres)
  -> ``--dbname=dbname='<X with \ and ' escaped>'`` (``_postgres.conninfo_value``).
- PostgreSQL identifiers: at most 63 bytes; the server silently cuts a longer name
  (in SQL at a character, in a connection at a byte), so a module given one worked
  on another database -> ``_postgres.check_names`` refuses db/target_db over 63
  bytes (or with a NUL: psycopg2 raised a bare ValueError) before connecting. The verifying restore's scratch database
  (``botops_verify_<db[:30]>_<hex>``) passed 63 bytes for a multi-byte db name (the
  CREATE cut it, the connection cut it elsewhere: "does not exist") -> its name is
  cut to fit by the module, at a character, random part kept.
  postgresql_restore ``rename_database`` named the old database ``name[:40]`` +
  ``_pre_restore_<time>`` (69 characters: the server cut it, ``renamed_to`` named
  no database) -> the head is cut in bytes so the whole name fits. A clean restore
  of a database whose name cannot name its safety dump file ended the sessions
  first and failed after -> the name is checked before anything is done.
- PostgreSQL SQL: identifiers through ``sql.Identifier`` (CREATE/DROP/REINDEX
  DATABASE, count(*), VACUUM, COMMENT), values as query parameters; no composed
  statement has parameters (psycopg2 would take a ``%`` in a name for one).
- pg_restore --list (postgresql_backup ``TABLE_DATA``): schema and table names are
  printed raw, space-separated (a newline as a space), and ``(\S+) (\S+)`` lost
  every table with a space from the manifest -> the line's oid, matched against
  the snapshot's tables (``_postgres.table_oids``).
- postgresql_vacuum ``tables``: ``schema.name`` split at the first ``.``, so a schema
  or table with a dot was "not found" -> every split is tried; more than one match
  is refused as ambiguous.
- Keys ``<schema>.<table>`` (row counts in manifests and results): a dot in a name
  makes a key ambiguous (``sch``+``ema.t a`` / ``sch.ema``+``t a``: one key, one
  count): kept (the manifest format), see pg_table_list.
- postgresql_backup (plain format with tables/schemas): the counts kept are chosen by
  ``fnmatch`` of the patterns, which knows neither pg_dump's quoting (``"Caps"``) nor
  its folding of unquoted capitals: not changed, reported.
- deploy_ledger ``root``/``path``: only os.path joins, JSON and a lock file beside.
"""

import gzip
import datetime
import json
import os
import re
import shutil
import sqlite3
import subprocess
from urllib.parse import quote

import psycopg2
import pytest
from psycopg2 import sql

from ansible_collections.botops.runbook.plugins.module_utils._manifest import (
    backup_name,
    manifest_path,
    new_manifest,
    utc_now,
    write_manifest,
)
from ansible_collections.botops.runbook.plugins.modules import (
    backup_info,
    backup_prune,
    deploy_ledger,
    postgresql_backup,
    postgresql_check,
    postgresql_restore,
    postgresql_vacuum,
    sqlite_backup,
    sqlite_check,
    sqlite_restore,
    sqlite_vacuum,
)

# One hostile name per character (or form) with a meaning to some layer.
HOSTILE = {
    "space": "a b",
    "hash": "a#b",
    "question": "a?b",
    "percent": "a%b",
    "pct41": "%41",
    "equals": "a=b",
    "amp": "a&b",
    "squote": "a'b",
    "dquote": 'a"b',
    "backslash": "a\\b",
    "semicolon": "a;b",
    "colon": "a:b",
    "star": "a*b",
    "bracket": "a[b]",
    "newline": "a\nb",
    "tab": "a\tb",
    "dash": "-a",
    "dot": ".a",
    "dotdot": "..",
    "parent": "../x",
    "slash": "a/b",
    "umlaut": "ü",
    "cjk": "名前",
    "long": "n" * 200,
    "file_uri": "file:a",
    "mode_ro": "a?mode=ro",
    "cmd_subst": "$(id)",
    "backtick": "`id`",
    "env_var": "$HOME",
    "tilde": "~a",
}
IDS = sorted(HOSTILE)
RAW_EXCEPTIONS = ("Traceback", "KeyError", "TypeError", "ValueError", "AttributeError", "IndexError",
                  "UnicodeEncodeError", "UnicodeDecodeError", "NameError", "OperationalError", "ProgrammingError")


def series_refuses(name):
    """_series' rules for a new set: the name cannot be one directory name, or holds
    a $VAR that Ansible would expand in every later path option."""
    return not name or name.startswith(".") or "/" in name or "\0" in name or "\n" in name or \
        re.search(r"\$(\w+|\{[^}]*\})", name)


def ansible_expands(name):
    """Ansible's type=path expands $VAR (and a leading ~, absent from these absolute paths)."""
    return os.path.expandvars(name) != name


def as_dir(name, short=False):
    """``name`` as one directory name (it must stay one component); ``short``: at most
    50 characters, where a long name in a second directory would pass SQLite's limit
    (see test_sqlite_paths_longer_than_sqlite_opens)."""
    name = name.replace("/", "_") if name not in (".", "..") else "d" + name
    return name[:50] if short else name


def no_traceback(result):
    msg = result.get("msg", "")
    assert not any(word in msg for word in RAW_EXCEPTIONS), msg
    assert "exception" not in result, result.get("exception")


def ok(result):
    no_traceback(result)
    assert not result["failed"], result.get("msg")
    return result


def refused(result, name, *why):
    """A clear refusal: failed, names the object (as typed or as repr) and says why."""
    no_traceback(result)
    assert result["failed"], "expected a refusal of %r" % (name,)
    assert name in result["msg"] or repr(name) in result["msg"], result["msg"]
    for word in why:
        assert word in result["msg"], result["msg"]
    return result


def inside(path, root):
    real, top = os.path.realpath(path), os.path.realpath(str(root))
    return real != top and os.path.commonpath([real, top]) == top


def tree(root):
    """Every file and directory under ``root`` (relative), to see what a run wrote."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), str(root)))
    return found


def written_only_under(before, after, *allowed):
    """What appeared in the tree lies under one of ``allowed`` (relative paths)."""
    new = after - before
    stray = [p for p in new if not any(p == a or p.startswith(a + os.sep) for a in allowed)]
    assert not stray, "written outside %s: %s" % (allowed, sorted(stray))


# --- SQLite ------------------------------------------------------------------

# Table names: every hostile name, plus names that look like SQLite's own tables.
SQLITE_TABLES = dict({name: i + 1 for i, name in enumerate(sorted(HOSTILE.values()))},
                     **{"users": 3, "sqlite-data": 2, "sqlite1": 4, "Caps": 5})


def quote_ident(name):
    return '"%s"' % name.replace('"', '""')


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory):
    """A small database whose tables carry the hostile names (rows: their index)."""
    path = str(tmp_path_factory.mktemp("template") / "template.db")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    with conn:
        for name, rows in SQLITE_TABLES.items():
            conn.execute("CREATE TABLE %s (id INTEGER PRIMARY KEY, v TEXT)" % quote_ident(name))
            conn.executemany("INSERT INTO %s (v) VALUES (?)" % quote_ident(name), [(name,)] * rows)
    conn.close()
    return path


def sqlite_rows(path):
    """{table: rows} of a SQLite file, read-only, whatever its name."""
    conn = sqlite3.connect("file://%s?mode=ro" % quote(os.path.abspath(path)), uri=True)
    try:
        return {name: conn.execute("SELECT count(*) FROM %s" % quote_ident(name)).fetchone()[0]
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")}
    finally:
        conn.close()


def make_db(template, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copyfile(template, path)
    return path


def file_names():
    """Names that can be a file name (no '/'); '..' and '.' as the stem of '<name>.db'."""
    return [key for key in IDS if "/" not in HOSTILE[key]]


@pytest.mark.parametrize("key", file_names())
def test_sqlite_file_and_directory_names(run_module, sqlite_template, tmp_path, key):
    """check, vacuum and backup of ``<name>/<name>.db`` into ``dest/<name>/``."""
    name = HOSTILE[key]
    path = str(tmp_path / "data" / as_dir(name) / (name + ".db"))
    make_db(sqlite_template, path)
    dest = tmp_path / "dest" / as_dir(name, short=True)
    dest.mkdir(parents=True)
    before = tree(tmp_path)
    source = os.path.relpath(os.path.dirname(path), str(tmp_path))

    checked = run_module(sqlite_check, {"path": path})
    vacuumed = run_module(sqlite_vacuum, {"path": path, "journal_mode": "wal",
                                          "operations": ["wal_checkpoint", "analyze", "reindex", "optimize", "vacuum"]})
    backup = run_module(sqlite_backup, {"path": path, "dest_dir": str(dest), "compression": "gzip"})
    if ansible_expands(name):  # Ansible's type=path made it another path, which does not exist
        for result in (checked, vacuumed):
            refused(result, os.path.expandvars(path), "does not exist")
        refused(backup, os.path.expandvars(path), "does not exist")
        assert tree(tmp_path) == before
        return

    assert ok(checked)["ok"] and checked["tables"] == SQLITE_TABLES
    ok(vacuumed)
    assert vacuumed["after"]["journal_mode"] == "wal"
    if series_refuses(name):  # the stem cannot name a file of its own in dest_dir
        refused(backup, name, "cannot name a backup series directory", "rename it")
        assert os.listdir(str(dest)) == []
        written_only_under(before, tree(tmp_path), source)
        return
    ok(backup)
    assert inside(backup["dest"], dest) and os.path.dirname(backup["dest"]) == str(dest)
    assert os.path.basename(backup["dest"]).startswith(name + "_")
    assert backup["tables"] == SQLITE_TABLES
    manifest = json.loads(open(backup["manifest"]).read())
    assert manifest["database"] == name and manifest["source"]["path"] == path
    assert manifest["tables"] == SQLITE_TABLES and manifest["files"][0]["name"] == os.path.basename(backup["dest"])
    plain = str(tmp_path / "plain.db")
    with gzip.open(backup["dest"]) as packed, open(plain, "wb") as out:
        shutil.copyfileobj(packed, out)
    assert sqlite_rows(plain) == SQLITE_TABLES
    os.unlink(plain)
    written_only_under(before, tree(tmp_path), source, os.path.relpath(str(dest), str(tmp_path)))
    listed = ok(run_module(backup_info, {"path": str(dest), "database": name, "verify_checksums": True}))
    assert [b["path"] for b in listed["backups"]] == [backup["dest"]] and listed["problems"] == []


def restore_cases():
    cases = []
    for key in file_names():
        name = HOSTILE[key]
        if ansible_expands(name) or series_refuses(name):
            continue  # no backup to restore (see the test above)
        cases.append(pytest.param(key))
    return cases


@pytest.mark.parametrize("key", restore_cases())
def test_sqlite_restore_names(run_module, sqlite_template, tmp_path, key):
    """Restore over ``<name>/<name>.db``: the right rows back, the safety copy beside it."""
    name = HOSTILE[key]
    path = str(tmp_path / "data" / as_dir(name) / (name + ".db"))
    make_db(sqlite_template, path)
    dest = tmp_path / "dest" / as_dir(name, short=True)
    dest.mkdir(parents=True)
    backup = ok(run_module(sqlite_backup, {"path": path, "dest_dir": str(dest), "compression": "none"}))
    conn = sqlite3.connect("file://%s" % quote(path), uri=True)
    with conn:
        conn.execute("DELETE FROM users")
    conn.close()
    before = tree(tmp_path)

    result = ok(run_module(sqlite_restore, {"src": backup["dest"], "path": path}))
    assert result["changed"] and result["tables"] == SQLITE_TABLES
    assert sqlite_rows(path) == SQLITE_TABLES
    assert os.path.dirname(result["safety_copy"]) == os.path.dirname(path)
    assert sqlite_rows(result["safety_copy"])["users"] == 0
    written_only_under(before, tree(tmp_path), os.path.relpath(os.path.dirname(path), str(tmp_path)))


def test_sqlite_paths_with_slashes(run_module, sqlite_template, tmp_path):
    """'/' has meanings of its own: '//' at the start of a URI path is an authority,
    '..' climbs. Both are plain path syntax to the module."""
    path = make_db(sqlite_template, str(tmp_path / "a" / "bot.db"))
    dest = tmp_path / "dest"
    dest.mkdir()
    double = "/" + path  # POSIX keeps a leading '//'; SQLite's URI took 'tmp' for a host
    assert ok(run_module(sqlite_check, {"path": double}))["tables"] == SQLITE_TABLES
    backup = ok(run_module(sqlite_backup, {"path": double, "dest_dir": "/" + str(dest) + "//", "compression": "none"}))
    assert inside(backup["dest"], dest) and sqlite_rows(backup["dest"]) == SQLITE_TABLES
    climbing = str(tmp_path / "a" / ".." / "a" / "bot.db")
    assert ok(run_module(sqlite_vacuum, {"path": climbing, "operations": ["vacuum"]}))
    restored = ok(run_module(sqlite_restore, {"src": backup["dest"], "path": climbing}))
    assert restored["tables"] == SQLITE_TABLES


def test_sqlite_restore_to_a_path_with_a_leading_double_slash(run_module, sqlite_template, tmp_path):
    path = make_db(sqlite_template, str(tmp_path / "a" / "bot.db"))
    backup = ok(run_module(sqlite_backup, {"path": path, "dest_dir": str(tmp_path), "compression": "none"}))
    assert ok(run_module(sqlite_restore, {"src": backup["dest"], "path": "/" + path}))["tables"] == SQLITE_TABLES


def test_sqlite_paths_longer_than_sqlite_opens(run_module, sqlite_template, tmp_path):
    """SQLite opens paths of at most 504 bytes: a longer one is refused by name, and
    nothing is left in the destination."""
    deep = tmp_path / ("d" * 200) / ("e" * 240)
    path = str(deep / ("f" * 120 + ".db"))
    make_db(sqlite_template, path)
    for module, args in ((sqlite_check, {}), (sqlite_vacuum, {"operations": ["vacuum"]})):
        refused(run_module(module, dict(args, path=path)), path, "SQLite opens paths of at most 504 bytes")
    short = make_db(sqlite_template, str(tmp_path / "bot.db"))
    before = tree(deep)
    refused(run_module(sqlite_backup, {"path": short, "dest_dir": str(deep), "compression": "none"}),
            str(deep), "SQLite opens paths of at most 504 bytes")
    assert tree(deep) == before


@pytest.mark.parametrize("method", ["backup", "vacuum_into"])
def test_sqlite_relative_destination_that_looks_like_a_uri(run_module, sqlite_template, tmp_path, monkeypatch,
                                                           method):
    """A relative dest_dir 'file:out#x' (or '-x'): SQLite must never read it as a URI
    (its copy would go to the file 'out', or to memory)."""
    make_db(sqlite_template, str(tmp_path / "data" / "bot.db"))
    monkeypatch.chdir(tmp_path)
    for relative in ("file:out#x", "file:out?mode=memory", "-x"):
        os.mkdir(relative)
        before = tree(tmp_path)
        backup = ok(run_module(sqlite_backup, {"path": "data/bot.db", "dest_dir": relative, "compression": "none",
                                               "method": method}))
        assert inside(backup["dest"], tmp_path / relative), backup["dest"]
        assert sqlite_rows(backup["dest"]) == SQLITE_TABLES
        written_only_under(before, tree(tmp_path), relative, "data")


@pytest.mark.skipif(not shutil.which("age-keygen"), reason="age is installed by scripts/setup.sh")
def test_age_never_takes_a_path_for_an_option(run_module, sqlite_template, tmp_path, monkeypatch):
    """Encrypted backup into, and restore from, relative paths that start with '-'."""
    path = make_db(sqlite_template, str(tmp_path / "bot.db"))
    key = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                               text=True).stdout.strip()
    monkeypatch.chdir(tmp_path)
    os.mkdir("-o")
    backup = ok(run_module(sqlite_backup, {"path": path, "dest_dir": "-o", "encrypt_to": [recipient],
                                           "compression": "none"}))
    assert backup["dest"].startswith("-o/") and backup["dest"].endswith(".age")
    restored = ok(run_module(sqlite_restore, {"src": backup["dest"], "path": "-restored.db",
                                              "decrypt_identity": str(key)}))
    assert restored["tables"] == SQLITE_TABLES and sqlite_rows(str(tmp_path / "-restored.db")) == SQLITE_TABLES


# --- the series directory: bot names and backup roots ------------------------------

def old_set(directory, bot, database, hours_ago):
    """A set of the series, written as the backup modules write one, hours ago."""
    import datetime  # pylint: disable=import-outside-toplevel
    created = utc_now() - datetime.timedelta(hours=hours_ago)
    path = os.path.join(str(directory), backup_name(database, created, ".db", "none"))
    with open(path, "wb") as handle:
        handle.write(b"old")
    manifest = new_manifest("sqlite", database, created, bot=bot)
    manifest.update(files=[{"name": os.path.basename(path), "size": 3,
                            "sha256": "a8a9a1f8d5bbd31e5bde3e9f3c3bd0ae66d0a2a28a75b1f1e8e5a0a9e5b8b5f3"}],
                    verified={"method": "integrity_check", "ok": True, "at": "x"})
    write_manifest(manifest_path(path), manifest)
    return path


@pytest.mark.parametrize("key", IDS)
def test_bot_names_and_backup_roots(run_module, sqlite_template, tmp_path, key):
    """sqlite_backup into ``<root>/<bot>/sqlite-<db>/`` with a hostile bot and root,
    then backup_info and backup_prune find exactly that series."""
    name = HOSTILE[key]
    path = make_db(sqlite_template, str(tmp_path / "data" / "bot_data.db"))
    # A root is a path: Ansible expands its $VAR (see the docstring); the bot is a name.
    root = tmp_path / "roots" / (as_dir(name, short=True) if not ansible_expands(name) else "env")
    root.mkdir(parents=True)
    decoy = root / "other-bot" / "sqlite-bot_data"
    decoy.mkdir(parents=True)
    decoy_set = old_set(decoy, "other-bot", "bot_data", 48)
    before = tree(tmp_path)
    backup = run_module(sqlite_backup, {"path": path, "backup_root": str(root), "bot": name, "compression": "none"})
    if series_refuses(name):
        refused(backup, name, "bot name", "cannot name a backup series directory", "choose another bot name")
        written_only_under(before, tree(tmp_path), "data")  # the source's -wal and -shm
        return
    ok(backup)
    series_dir = os.path.join(str(root), name, "sqlite-bot_data")
    assert backup["series"]["dir"] == series_dir and os.path.dirname(backup["dest"]) == series_dir
    assert backup["series"]["bot"] == name and backup["series"]["id"] == "%s/sqlite-bot_data" % name
    assert inside(backup["dest"], root)
    assert json.loads(open(backup["manifest"]).read())["bot"] == name
    older = old_set(series_dir, name, "bot_data", 24)

    listed = ok(run_module(backup_info, {"path": str(root), "bot": name}))
    assert sorted(b["path"] for b in listed["backups"]) == sorted([backup["dest"], older])
    assert [s["id"] for s in listed["series"]] == ["%s/sqlite-bot_data" % name]
    assert listed["series"][0]["dir"] == series_dir

    pruned = ok(run_module(backup_prune, {"path": str(root), "bot": name, "keep_last": 1}))
    assert [d["path"] for d in pruned["deleted"]] == [older]
    assert sorted(pruned["deleted_files"]) == sorted([older, manifest_path(older)])
    assert os.path.exists(backup["dest"]) and os.path.exists(decoy_set) and not os.path.exists(older)


# --- deploy_ledger ---------------------------------------------------------------

@pytest.mark.parametrize("key", IDS)
def test_deploy_ledger_roots_and_paths(run_module, tmp_path, key):
    name = HOSTILE[key]
    root = tmp_path / as_dir(name)
    release = as_dir(name)
    entry = {"id": name, "kind": "deploy", "release": release, "outcome": "success"}
    if ansible_expands(name):
        result = run_module(deploy_ledger, {"root": str(root), "state": "present", "entry": entry})
        refused(result, os.path.expandvars(str(root)), "does not exist")
        assert not os.path.exists(str(root)) or os.listdir(str(root)) == []
        return
    (root / "releases" / release).mkdir(parents=True)
    (root / "releases" / release / ".botops-release.json").write_text("{}")
    os.symlink(str(root / "releases" / release), str(root / "current"))
    ok(run_module(deploy_ledger, {"root": str(root), "state": "present", "entry": entry}))
    read = ok(run_module(deploy_ledger, {"root": str(root)}))
    assert read["paths"]["ledger"] == str(root / "ledger.jsonl") and read["entries"] == [entry]
    assert read["live_release"] == release and read["releases"] == [release]
    assert read["last_good_release"] == release
    ledger = str(tmp_path / (as_dir(name) + ".jsonl"))
    ok(run_module(deploy_ledger, {"path": ledger, "state": "present", "entry": entry}))
    assert ok(run_module(deploy_ledger, {"path": ledger}))["entries"] == [entry]
    assert sorted(n for n in os.listdir(str(tmp_path)) if not n.endswith(".botops.lock")) == sorted(
        [as_dir(name), as_dir(name) + ".jsonl"])


# --- PostgreSQL ------------------------------------------------------------------

# Database names: each character with a meaning somewhere, several to a name (a
# database costs time), and the forms that matter alone.
PG_DATABASES = {
    "punctuation": "a b#?%&'\"\\;:*[]\t$(id)`id`",
    "conninfo": "dbname=postgres",
    "uri": "postgresql://localhost/postgres",
    "pct41": "%41",
    "dash": "-a",
    "dot": ".a",
    "dotdot": "..",
    "parent": "../x",
    "newline": "a\nb",
    "unicode": "ü名前 Caps",
    "env_var": "$HOME.x",
    "file_uri": "file:a?mode=ro",
    "max_bytes": "名前" * 10 + "abc",  # 63 bytes: the longest a PostgreSQL name can be
}
# Longer than 63 bytes: the server would silently use a cut name.
PG_TOO_LONG = {"long": "n" * 200, "long_multibyte": "a" + "名前" * 12}
PG_NO_NAME = {"nul": "a\0b"}  # no PostgreSQL name holds a NUL (libpq strings end there)
PG_ROWS = 3


def restored_name(name):
    """A new database for a restore, still carrying ``name``'s characters."""
    return name.encode("utf-8")[:56].decode("utf-8", "ignore") + " (r)"


def pg_admin(info, db="postgres"):
    conn = psycopg2.connect(host=info["host"], port=info["port"], dbname=db, user="postgres",
                            password=info["superuser_password"])
    conn.autocommit = True
    return conn


def pg_run(info, db, statement, args=None):
    conn = pg_admin(info, db)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def as_sql(info, composed):
    conn = pg_admin(info)
    try:
        return composed.as_string(conn)
    finally:
        conn.close()


def drop_databases(info, names):
    for name in names:
        pg_run(info, "postgres", sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def pg_hostile(pg_botdb):
    """The hostile databases, each with one table of PG_ROWS rows; dropped afterwards."""
    made = []
    for name in list(PG_DATABASES.values()) + list(PG_TOO_LONG.values()):
        pg_run(pg_botdb, "postgres", sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        real = pg_run(pg_botdb, "postgres", "SELECT datname FROM pg_database ORDER BY oid DESC LIMIT 1")[0][0]
        pg_run(pg_botdb, real, "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, %d)" % PG_ROWS)
    yield pg_botdb
    drop_databases(pg_botdb, made + [restored_name(n) for n in PG_DATABASES.values()]
                   + [restored_name(n) + " (d)" for n in PG_DATABASES.values()])
    drop_databases(pg_botdb, [n.encode("utf-8")[:63].decode("utf-8", "ignore") for n in PG_TOO_LONG.values()])


@pytest.fixture(scope="module")
def pg_source(pg_hostile):
    """A plain database of PG_ROWS rows, whose backups restore into hostile targets."""
    source = "botops adversarial source"
    pg_run(pg_hostile, "postgres", sql.SQL("CREATE DATABASE {}").format(sql.Identifier(source)))
    pg_run(pg_hostile, source, "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, %d)" % PG_ROWS)
    yield source
    drop_databases(pg_hostile, [source])


@pytest.fixture
def pg_source_backup(run_module, pg_hostile, pg_source, tmp_path):
    dest = tmp_path / "source"
    dest.mkdir()
    return ok(run_module(postgresql_backup, dict(admin_params(pg_hostile, pg_source), dest_dir=str(dest),
                                                 row_counts="exact")))


def admin_params(info, db):
    return {"login_host": info["host"], "login_port": info["port"], "login_user": "postgres",
            "login_password": info["superuser_password"], "db": db}


@pytest.mark.parametrize("key", sorted(PG_DATABASES))
def test_postgresql_database_names(run_module, pg_hostile, pg_source_backup, tmp_path, key):
    """check, vacuum, backup (verified by a restore) and restore of database ``name``."""
    name = PG_DATABASES[key]
    params = admin_params(pg_hostile, name)
    dest = tmp_path / "dest"
    dest.mkdir()

    checked = ok(run_module(postgresql_check, dict(params, fail_on_problems=False)))
    assert checked["largest_tables"][0]["table"] == "public.t"
    assert ok(run_module(postgresql_vacuum, dict(params, operation="reindex")))["statements"] == [
        "REINDEX DATABASE CONCURRENTLY %s" % as_sql(pg_hostile, sql.Identifier(name))]
    assert ok(run_module(postgresql_vacuum, dict(params, tables=["public.t"])))["after"]["public.t"]

    backup = run_module(postgresql_backup, dict(params, dest_dir=str(dest), verify="restore", row_counts="exact"))
    target = restored_name(name)
    if series_refuses(name):  # its sets could not be a series: refused, even with a dest of their own
        refused(backup, name, "cannot name a backup series directory", "rename it")
        named = run_module(postgresql_backup, dict(params, dest=str(dest / "named.dump")))
        refused(named, name, "cannot name a backup series directory", "rename it")
        assert os.listdir(str(dest)) == []
        # Still a target: a restore into a database of that kind of name.
        restored = ok(run_module(postgresql_restore, dict(params, db="postgres", src=pg_source_backup["dest"],
                                                          target_db=target, row_counts="exact")))
        assert restored["target_db"] == target and restored["tables"] == {"public.t": PG_ROWS}
        assert pg_run(pg_hostile, target, "SELECT count(*) FROM t") == [(PG_ROWS,)]
        # A clean restore over it could not name its safety dump: refused before a
        # session is ended or anything written.
        source_dir = os.path.dirname(pg_source_backup["dest"])
        listed = sorted(os.listdir(source_dir))
        session = pg_admin(pg_hostile, name)
        try:
            cleaned = run_module(postgresql_restore, dict(params, src=pg_source_backup["dest"], clean=True,
                                                          terminate_connections=True))
            refused(cleaned, name, "cannot name a backup series directory", "rename_existing=true")
            with session.cursor() as cur:
                cur.execute("SELECT count(*) FROM t")
                assert cur.fetchall() == [(PG_ROWS,)]
        finally:
            session.close()
        assert os.listdir(str(dest)) == [] and sorted(os.listdir(source_dir)) == listed
        return
    ok(backup)
    assert os.path.dirname(backup["dest"]) == str(dest)
    manifest = json.loads(open(backup["manifest"]).read())
    assert manifest["database"] == name and manifest["tables"] == {"public.t": PG_ROWS}
    assert sorted(os.listdir(str(dest))) == sorted([os.path.basename(backup["dest"]),
                                                    os.path.basename(backup["manifest"])])
    listed = ok(run_module(backup_info, {"path": str(dest), "database": name}))
    assert [b["path"] for b in listed["backups"]] == [backup["dest"]]

    restored = ok(run_module(postgresql_restore, dict(params, src=backup["dest"], target_db=target,
                                                      row_counts="exact")))
    assert restored["target_db"] == target and restored["tables"] == {"public.t": PG_ROWS}
    assert pg_run(pg_hostile, target, "SELECT count(*) FROM t") == [(PG_ROWS,)]
    assert pg_run(pg_hostile, "postgres", "SELECT count(*) FROM pg_tables WHERE tablename = 't'") == [(0,)]


@pytest.mark.parametrize("key", ["dash", "punctuation"])
def test_postgresql_directory_dumps(run_module, pg_hostile, tmp_path, monkeypatch, key):
    """Directory dumps go through module.run_command (pg_dump --file, pg_restore's
    dump path): no $VAR expansion, and a relative dump path is never an option."""
    name = PG_DATABASES[key]
    params = admin_params(pg_hostile, name)
    dest = tmp_path / "dest"
    dest.mkdir()
    backup = ok(run_module(postgresql_backup, dict(params, dest_dir=str(dest), format="directory",
                                                   row_counts="exact")))
    assert os.path.dirname(backup["dest"]) == str(dest) and os.path.isdir(backup["dest"])
    assert sorted(os.listdir(str(dest))) == sorted([os.path.basename(backup["dest"]),
                                                    os.path.basename(backup["manifest"])])
    assert json.loads(open(backup["manifest"]).read())["tables"] == {"public.t": PG_ROWS}
    monkeypatch.chdir(str(dest))
    target = restored_name(name) + " (d)"
    restored = ok(run_module(postgresql_restore, dict(params, src=os.path.basename(backup["dest"]),
                                                      target_db=target, row_counts="exact")))
    assert restored["tables"] == {"public.t": PG_ROWS}
    drop_databases(pg_hostile, [target])


@pytest.mark.parametrize("key", sorted(PG_TOO_LONG) + sorted(PG_NO_NAME))
def test_postgresql_names_longer_than_63_bytes_are_refused(run_module, pg_hostile, tmp_path, key):
    name, why = (PG_TOO_LONG[key], "63 bytes") if key in PG_TOO_LONG else (PG_NO_NAME[key], "NUL")
    params = admin_params(pg_hostile, name)
    dest = tmp_path / "dest"
    dest.mkdir()
    for module, args in ((postgresql_check, {}), (postgresql_vacuum, {}),
                         (postgresql_backup, {"dest_dir": str(dest)}),
                         (postgresql_restore, {"src": str(dest / "x.dump"), "target_db": "t",
                                               "require_manifest": False})):
        refused(run_module(module, dict(params, **args)), name, why)
    refused(run_module(postgresql_restore, dict(admin_params(pg_hostile, "botdb"), src=str(dest / "x.dump"),
                                                target_db=name, require_manifest=False)), name, why)
    assert os.listdir(str(dest)) == []


def test_postgresql_rename_existing_names_a_database_that_exists(run_module, pg_hostile, pg_source_backup):
    name = "名前 " + "n" * 37  # 40 characters, 43 bytes
    drop = [name]
    try:
        pg_run(pg_hostile, "postgres", sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        result = ok(run_module(postgresql_restore, dict(admin_params(pg_hostile, name), src=pg_source_backup["dest"],
                                                        clean=True, rename_existing=True)))
        drop.append(result["renamed_to"])
        drop += [n for (n,) in pg_run(pg_hostile, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE %s",
                                      (name.replace("_", "\\_") + "%",))]
        assert result["tables"] == {"public.t": PG_ROWS}
        # ::text: a literal compared with a name is cut to 63 bytes itself
        assert pg_run(pg_hostile, "postgres", "SELECT 1 FROM pg_database WHERE datname::text = %s",
                      (result["renamed_to"],)) == [(1,)]
    finally:
        drop_databases(pg_hostile, drop)


def test_postgresql_renamed_names_of_long_databases_differ():
    """Two long names with one beginning get two new names, each whole in 63 bytes."""
    when = datetime.datetime(2026, 12, 3, 12, 0, 0, tzinfo=datetime.timezone.utc)
    names = ["customer_analytics_warehouse_eu_west_primary", "customer_analytics_warehouse_eu_west_replica",
             "名前" * 10 + "abc", "名前" * 10 + "abd", "short"]
    renamed = [postgresql_restore.renamed_name(n, when) for n in names]
    assert len(set(renamed)) == len(names), renamed
    assert all(len(r.encode("utf-8")) <= 63 and r.endswith("_pre_restore_20261203T120000Z") for r in renamed), renamed
    assert renamed[-1] == "short_pre_restore_20261203T120000Z"


# Schemas and tables: one database, every hostile name a table in public, and a few
# tables in each hostile schema.
PG_SCHEMAS = ["My Schema", "sch.ema", 'q"s', "Caps", "new\nline", "$HOME"]
PG_SCHEMA_TABLES = ["t a", "t.b", 'q"t', "Caps", "$HOME", "-x"]
PG_TABLES_DB = "botops adversarial tables"


def pg_table_list():
    """[(schema, table, rows)]; names PostgreSQL cannot hold (over 63 bytes) left out."""
    tables = [("public", name, i + 1) for i, name in enumerate(sorted(HOSTILE.values()))
              if len(name.encode("utf-8")) <= 63]
    tables += [(schema, table, i + 1) for schema in PG_SCHEMAS for i, table in enumerate(PG_SCHEMA_TABLES)]
    # "sch.ema.t a" names this table and "t a" in "sch.ema": for postgresql_vacuum
    # (ambiguous, refused), and in row counts one key for both (documented, not
    # fixed: the manifest's key format), hence the same number of rows.
    return tables + [("sch", "ema.t a", 1)]


def pg_expected_tables():
    return {"%s.%s" % (schema, table): rows for schema, table, rows in pg_table_list()}


@pytest.fixture(scope="module")
def pg_tables(pg_botdb):
    drop_databases(pg_botdb, [PG_TABLES_DB])
    pg_run(pg_botdb, "postgres", sql.SQL("CREATE DATABASE {}").format(sql.Identifier(PG_TABLES_DB)))
    conn = pg_admin(pg_botdb, PG_TABLES_DB)
    with conn.cursor() as cur:
        for schema in PG_SCHEMAS + ["sch"]:
            cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for schema, table, rows in pg_table_list():
            ident = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            cur.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY)").format(ident))
            # no query parameters: psycopg2 would read a '%' in a name as a placeholder
            cur.execute(sql.SQL("INSERT INTO {} SELECT generate_series(1, {})").format(ident, sql.Literal(rows)))
        cur.execute("ANALYZE")
    conn.close()
    yield pg_botdb
    drop_databases(pg_botdb, [PG_TABLES_DB, "tables restored"])


def test_postgresql_schema_and_table_names(run_module, pg_tables, tmp_path):
    """Row counts by the right names through backup (listing and restore verification),
    restore, check and vacuum."""
    params = admin_params(pg_tables, PG_TABLES_DB)
    expected = pg_expected_tables()
    dest = tmp_path / "dest"
    dest.mkdir()

    listed = ok(run_module(postgresql_backup, dict(params, dest_dir=str(dest), row_counts="exact")))
    assert listed["tables"] == expected
    verified = ok(run_module(postgresql_backup, dict(params, dest_dir=str(dest), verify="restore",
                                                     format="plain")))
    assert verified["tables"] == expected
    restored = ok(run_module(postgresql_restore, dict(params, src=listed["dest"], target_db="tables restored",
                                                      row_counts="exact")))
    assert restored["tables"] == expected

    checked = ok(run_module(postgresql_check, dict(params, fail_on_problems=False, largest_tables=1000)))
    assert {t["table"] for t in checked["largest_tables"]} == set(expected)

    names = ["My Schema.t a", "sch.ema.t.b", 'q"s.q"t', "Caps.Caps", "new\nline.$HOME", "$HOME.-x", "public.../x",
             "public.a'b", "public.名前"]
    vacuumed = ok(run_module(postgresql_vacuum, dict(params, tables=names)))
    assert sorted(vacuumed["after"]) == sorted(names)
    assert 'VACUUM (ANALYZE) "sch.ema"."t.b"' in vacuumed["statements"]
    assert 'VACUUM (ANALYZE) "q""s"."q""t"' in vacuumed["statements"]
    missing = run_module(postgresql_vacuum, dict(params, tables=["sch.ema.t.c"]))
    refused(missing, "sch.ema.t.c", "not found")
    ambiguous = run_module(postgresql_vacuum, dict(params, tables=["sch.ema.t a"]))
    refused(ambiguous, "sch.ema.t a", "ambiguous", '"ema.t a" in schema "sch"', '"t a" in schema "sch.ema"')


def test_postgresql_table_patterns_reach_pg_dump_as_typed(run_module, pg_tables, tmp_path):
    """A table pattern with a $VAR goes to pg_dump unexpanded (directory dump: run_command)."""
    params = admin_params(pg_tables, PG_TABLES_DB)
    dest = tmp_path / "dest"
    dest.mkdir()
    result = ok(run_module(postgresql_backup, dict(params, dest_dir=str(dest), format="directory",
                                                   tables=['"$HOME"."$HOME"', 'public."$HOME"'], row_counts="exact")))
    assert result["tables"] == {"$HOME.$HOME": 5, "public.$HOME": pg_expected_tables()["public.$HOME"]}
