# -*- coding: utf-8 -*-
# Copyright: botops.runbook developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""database_list: a host's databases of both engines, as the backup, check and maintenance roles take them."""

from __future__ import annotations

import os
import posixpath

from ansible.errors import AnsibleFilterError
from ansible.module_utils.six import string_types

_CONNECTION = ("login_host", "login_port", "login_user", "login_password", "login_unix_socket")


def _describe(entry):
    shown = {k: ("********" if k == "login_password" else v) for k, v in entry.items()}
    return repr(shown)


def database_list(databases, bot, deployed=None, role="backup"):
    """The entries of `databases`, then those of `deployed` not already listed, normalized.

    Each gets `engine` (sqlite for an entry with `path`, postgresql for one with `db`),
    `bot` (its own, else `bot`), `name` (the file's name without extension, or the
    database) and `label` (`<bot>/<engine>-<name>`, the series id). An entry that names
    the same database as an earlier one (the same file; the same server and database)
    is dropped. A malformed entry fails, naming it and what it should be.
    """
    if databases is None or (isinstance(databases, string_types) and not databases.strip()):
        databases = []
    if not isinstance(databases, list):
        raise AnsibleFilterError("%s: the list of databases (botops_databases or %s_databases) must be a list of "
                                 "entries, not %r" % (role, role, databases))
    out, seen = [], set()
    for index, given in enumerate(list(databases) + list(deployed or [])):
        if not isinstance(given, dict):
            raise AnsibleFilterError("%s: database entry %d (%r) is not a mapping: a SQLite database is {path: /abs/file.db}, "
                                     "a PostgreSQL one {db: name, login_host: ..., login_user: ...}" % (role, index + 1, given))
        entry = {k: v for k, v in given.items() if v is not None and not (isinstance(v, string_types) and v == "")}
        engine = entry.get("engine") or ("sqlite" if "path" in entry else "postgresql" if "db" in entry else "")
        problem = None
        if engine == "sqlite":
            path = entry.get("path")
            if not isinstance(path, string_types) or not posixpath.isabs(path) or path.endswith("/"):
                problem = "a SQLite database needs path, an absolute file name"
            elif "db" in entry or any(k in entry for k in _CONNECTION):
                problem = "a SQLite database has a path and no db or login_* settings"
            else:
                path = posixpath.normpath(path)
                entry["path"] = path
                name = os.path.splitext(posixpath.basename(path))[0]
                key = ("sqlite", path)
        elif engine == "postgresql":
            db = entry.get("db")
            if not isinstance(db, string_types) or not db.strip():
                problem = "a PostgreSQL database needs db, its name"
            elif "path" in entry:
                problem = "a PostgreSQL database has db (and login_*), not path"
            else:
                name = db
                key = ("postgresql", str(entry.get("login_host", "")), str(entry.get("login_unix_socket", "")),
                       str(entry.get("login_port", "")), db)
        else:
            problem = "engine must be sqlite or postgresql (or left out, with path or db)"
        if problem:
            raise AnsibleFilterError("%s: database entry %d %s is not one: %s." % (role, index + 1, _describe(entry), problem))
        if key in seen:
            continue
        seen.add(key)
        entry["engine"] = engine
        entry["bot"] = entry.get("bot") or bot
        entry["name"] = name
        entry["label"] = "%s/%s-%s" % (entry["bot"], engine, name)
        out.append(entry)
    return out


class FilterModule(object):
    def filters(self):
        return {"database_list": database_list}
