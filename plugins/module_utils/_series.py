# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One identity for a backup series, defined once.

A series is every set of one database of one bot: its key is ``(bot, engine,
database)``, where ``database`` is the PostgreSQL database's name or the SQLite
file's name without its extension. A set written without a bot name belongs to
its host: the host's name stands in for the bot, so two hosts' unnamed sets are
never one series. A bot is one series wherever it runs. Under a backup root its directory is
``<backup_root>/<bot>/<engine>-<database>``; its ``id`` is the same path without
the root (``reminder-bot/sqlite-bot_data``), fit as a key in a role's dict.
Backup modules compute the directory, backup_info returns the series of every
set, and backup_prune, restore_drill and backup_offsite group by it.
"""

import os
import re

from ansible_collections.botops.runbook.plugins.module_utils._files import BackupError

ENGINES = ("sqlite", "postgresql")


# What Ansible's path options (src, path, dest_dir) expand, with no escape.
_EXPANDABLE = re.compile(r"\$(?:\w+|\{[^}]*\})", re.ASCII)  # as os.path.expandvars
BOT_ADVICE = ("choose another bot name, or leave bot unset with dest_dir (a set without a bot belongs to its "
              "host's series)")
DATABASE_ADVICE = "the series of its backups is named after the database: rename it"


def check_component(what, value, instead="rename it"):
    """``value`` can be one directory name of a series, or BackupError says why not
    and what to do (``instead``)."""
    if not isinstance(value, str) or not value or value.startswith(".") or "/" in value or "\0" in value \
            or "\n" in value:
        raise BackupError("%s %r cannot name a backup series directory: it must be non-empty, must not start "
                          "with '.', and must not contain '/', a NUL or a newline; %s" % (what, value, instead))
    return value


def check_addressable(what, value, instead="rename it"):
    """A set written under ``value`` could be named to a module again: no ``$VAR``,
    which Ansible would expand in the path of every later module (src of a restore)."""
    expandable = _EXPANDABLE.search(value)
    if expandable:
        raise BackupError("%s %r cannot name a backup series directory: Ansible expands '%s' in every path option, "
                          "so no module could be given the sets' paths (src of a restore); %s"
                          % (what, value, expandable.group(0), instead))
    return value


def series(bot, engine, database, host=None, writing=False):
    """The series' key as a dict: bot (``host`` when there is none), engine,
    database and id; BackupError when a part cannot name a directory (or, when
    ``writing`` a new set, when its paths could not be given to a module)."""
    bot = bot or host
    checks = (check_component, check_addressable) if writing else (check_component,)
    for check in checks:
        if bot != host:
            check("bot name", bot, BOT_ADVICE)
        else:
            check("host name", bot, "give a bot name")
    if engine not in ENGINES:
        raise BackupError("engine %r is not one of %s" % (engine, ", ".join(ENGINES)))
    for check in checks:
        check("%s database name" % engine, database, DATABASE_ADVICE)
    return {"bot": bot, "engine": engine, "database": database, "id": "%s/%s-%s" % (bot, engine, database)}


def series_dir(backup_root, bot, engine, database):
    """``<backup_root>/<bot>/<engine>-<database>``, each part checked."""
    return os.path.join(backup_root, series(bot, engine, database)["id"])
