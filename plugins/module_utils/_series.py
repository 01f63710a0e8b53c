# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One identity for a backup series, defined once.

A series is every set of one database of one bot: its key is ``(bot, engine,
database)``, where ``database`` is the PostgreSQL database's name or the SQLite
file's name without its extension. Under a backup root its directory is
``<backup_root>/<bot>/<engine>-<database>``; its ``id`` is the same path without
the root (``reminder-bot/sqlite-bot_data``), fit as a key in a role's dict.
Backup modules compute the directory, backup_info returns the series of every
set, and backup_prune, restore_drill and backup_offsite group by it.
"""

import os

from ansible_collections.botops.runbook.plugins.module_utils._files import BackupError

ENGINES = ("sqlite", "postgresql")


def check_component(what, value):
    """``value`` can be one directory name of a series, or BackupError says why not."""
    if not value or value in (".", "..") or value.startswith(".") or "/" in value or "\0" in value \
            or "\n" in value:
        raise BackupError("%s %r cannot name a backup series directory: it must be non-empty, must not start "
                          "with '.', and must not contain '/', a NUL or a newline; rename it, or give dest_dir "
                          "instead of backup_root" % (what, value))
    return value


def series(bot, engine, database):
    """The series' key as a dict: bot, engine, database and id."""
    return {"bot": bot, "engine": engine, "database": database,
            "id": "%s/%s-%s" % (bot or "-", engine or "-", database or "-")}


def series_dir(backup_root, bot, engine, database):
    """``<backup_root>/<bot>/<engine>-<database>``, each part checked."""
    check_component("bot name", bot)
    check_component("%s database name" % engine, database)
    return os.path.join(backup_root, bot, "%s-%s" % (engine, database))


def key_of(manifest):
    """(bot, engine, database) of a set, from its manifest (bot may be None in sets
    written without one)."""
    return (manifest.get("bot"), manifest.get("engine"), manifest.get("database"))
