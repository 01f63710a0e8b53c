# -*- coding: utf-8 -*-
# Copyright: botops.runbook developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""database_list: a host's databases of both engines, as the backup, check and maintenance roles take them."""

from __future__ import annotations

import os
import posixpath
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.six import string_types

_CONNECTION = ("login_host", "login_port", "login_user", "login_password", "login_unix_socket")


def _describe(entry):
    shown = {k: ("********" if k == "login_password" else v) for k, v in entry.items() if k not in ("label", "name")}
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
        problem, key, name = None, None, None
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
        # Two databases in one series would share its retention (one would lose its
        # history) and its restore drill: refuse, naming both.
        for other in out:
            if other["label"] == entry["label"]:
                raise AnsibleFilterError(
                    "%s: database entries %s and %s both make the backup series %s (the same bot and database name): "
                    "give one of them its own bot, or remove the one that repeats the other (a database the deploy "
                    "role published needs no entry in botops_databases)."
                    % (role, _describe(other), _describe(entry), entry["label"]))
        out.append(entry)
    return out


def public_entries(entries):
    """The entries without their passwords, for a loop whose items are shown."""
    return [{k: v for k, v in entry.items() if k != "login_password"} for entry in entries or []]


def _size(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024.0
    return "?"  # pragma: no cover


def check_verdicts(results):
    """One verdict per registered sqlite_check / postgresql_check loop result (run with fail_on_problems=false).

    A result that failed (the database could not be opened) is a verdict with that
    failure as its problem; a result whose `ok` is false carries the module's problems.
    """
    verdicts = []
    for result in results or []:
        if not isinstance(result, dict) or result.get("skipped"):
            continue
        item = result.get("item") or {}
        problems = list(result.get("problems") or [])
        if result.get("failed"):
            problems = problems or [str(result.get("msg") or "failed").splitlines()[0]]
        # A result without `ok` did not check anything (the module did not run to the end).
        ok = not problems and not result.get("failed") and result.get("ok") is True
        if not ok and not problems:
            problems = ["the check did not pass"]
        if item.get("engine") == "postgresql":
            detail = "%s, amcheck %s" % (_size(result.get("database_size")), "skipped" if not result.get("amcheck") else "run")
        else:
            tables = len(result.get("tables") or {})
            detail = "%s, integrity %s, %d tables" % (_size(result.get("size")), result.get("integrity", "?"), tables)
        verdicts.append({
            "label": item.get("label", "?"), "engine": item.get("engine"), "bot": item.get("bot"),
            "database": item.get("name"), "ok": ok, "problems": problems,
            "line": "%s %s (%s)" % (item.get("label", "?"), "ok" if ok else "FAILED", detail),
        })
    return verdicts


def check_record(verdicts, now):
    """The last_check.json entries of `verdicts` (series id -> bot, engine, database, last_run, ok)."""
    return {v["label"]: {"bot": v["bot"], "engine": v["engine"], "database": v["database"], "last_run": int(now), "ok": bool(v["ok"])}
            for v in verdicts or []}


_EXPOSURE = re.compile(r"Overall exposure level for (\S+):\s+([0-9]+(?:\.[0-9]+)?)")


def _mode_problem(path, mode_text, isdir, prefixes):
    """[the problem] when a directory is not 0700 or stricter, or a file is readable or
    writable by others; `prefixes` name a directory and a file in the message."""
    mode = int(mode_text or "0", 8)
    if isdir:
        if mode & 0o077:
            return ["%s%s is mode %s, not 0700: chmod 0700 %s" % (prefixes[0], path, mode_text, path)]
    elif mode & 0o006:
        return ["%s%s is %s by others (mode %s): chmod o-rwx %s" % (
            prefixes[1], path, "readable" if mode & 0o004 else "writable", mode_text, path)]
    return []


def security_findings(stats, found, analyses, max_exposure):
    """Problems of the runbooks' security checks (a list of strings, empty when all is well).

    `stats`: registered stat results (loop) of files that must not be readable by
    others (.env files, SQLite databases) and of directories that must be 0700 or
    stricter (the backup root); `found`: the find result of the backup tree
    (files must not be readable by others, directories must be 0700 or stricter);
    `analyses`: registered `systemd-analyze security <unit>` results (loop), whose
    exposure must not be above `max_exposure`.
    """
    problems = []
    for result in stats or []:
        stat = (result or {}).get("stat") or {}
        name = (result or {}).get("item")
        name = name.get("path", name) if isinstance(name, dict) else name
        if not stat.get("exists"):
            continue
        problems.extend(_mode_problem(name, stat.get("mode"), stat.get("isdir"), ("directory ", "")))
    for entry in (found or {}).get("files") or []:
        path = entry.get("path")
        if entry.get("islnk"):
            problems.append("the backup tree holds a symlink, %s: backup sets are plain files; remove it (rm %s)" % (path, path))
            continue
        problems.extend(_mode_problem(path, entry.get("mode"), entry.get("isdir"), ("backup directory ", "backup file ")))
    for result in analyses or []:
        unit = (result or {}).get("item")
        if (result or {}).get("skipped"):
            continue
        match = _EXPOSURE.search((result or {}).get("stdout") or "")
        if (result or {}).get("rc") != 0 or not match:
            problems.append("systemd-analyze security %s failed (rc=%s): %s" % (
                unit, (result or {}).get("rc"), ((result or {}).get("stderr") or "no exposure level in its output").strip().splitlines()[0]
                if ((result or {}).get("stderr") or "").strip() else "no exposure level in its output"))
            continue
        exposure = float(match.group(2))
        if exposure > float(max_exposure):
            problems.append("unit %s has an exposure level of %.1f, above %.1f: harden it (deploy_unit_hardening) or "
                            "raise check_max_exposure" % (unit, exposure, float(max_exposure)))
    return problems


def over_freelist_ratio(results, ratio):
    """The sqlite_vacuum results (registered loop items) whose database's free pages
    are more than `ratio` of its pages, as measured by that run's `before`."""
    chosen = []
    for result in results or []:
        before = (result or {}).get("before") or {}
        pages = before.get("page_count") or 0
        if pages and float(before.get("freelist_count") or 0) / pages > float(ratio):
            chosen.append(result)
    return chosen


def maintenance_outcome(results):
    """One entry per registered sqlite_vacuum / postgresql_vacuum loop result:
    label, failed, changed and a line saying what was done."""
    out = []
    for result in results or []:
        if not isinstance(result, dict) or result.get("skipped"):
            continue
        item = result.get("item") or {}
        if "label" not in item and isinstance(item.get("item"), dict):
            item = item["item"]
        label = item.get("label", "?")
        if result.get("failed"):
            line = "%s FAILED: %s" % (label, str(result.get("msg") or "failed").splitlines()[0])
        elif "operations" in result:
            ops = ", ".join("%s %s" % (op, outcome) for op, outcome in sorted((result.get("operations") or {}).items()))
            before, after = result.get("before") or {}, result.get("after") or {}
            sizes = ""
            if "vacuum" in (result.get("operations") or {}) and after.get("size") is not None:
                sizes = " (%s -> %s)" % (_size(before.get("size")), _size(after.get("size")))
            line = "%s %s%s" % (label, ops, sizes)
        else:
            line = "%s %s %s" % (label, "reindex" if any("REINDEX" in str(s) for s in result.get("statements") or []) else "vacuum analyze",
                                 "changed" if result.get("changed") else "unchanged")
        out.append({"label": label, "failed": bool(result.get("failed")), "changed": bool(result.get("changed")), "line": line})
    return out


def bot_databases(bots):
    """(bot, database) pairs of the deploy_info `bots`: each database normalized as
    database_list does (engine, bot, name, label), beside its bot's description."""
    pairs = []
    for bot in bots or []:
        if not isinstance(bot, dict):
            continue
        for entry in database_list(bot.get("databases") or [], bot.get("bot"), role="restore"):
            pairs.append({"bot": bot, "database": entry})
    return pairs


class FilterModule(object):
    def filters(self):
        return {"database_list": database_list, "check_verdicts": check_verdicts, "security_findings": security_findings,
                "check_record": check_record, "over_freelist_ratio": over_freelist_ratio,
                "maintenance_outcome": maintenance_outcome, "bot_databases": bot_databases,
                "public_entries": public_entries}
