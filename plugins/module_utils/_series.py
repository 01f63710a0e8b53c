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

from ansible_collections.botops.runbook.plugins.module_utils._files import BackupError

ENGINES = ("sqlite", "postgresql")


def check_component(what, value):
    """``value`` can be one directory name of a series, or BackupError says why not."""
    if not isinstance(value, str) or not value or value.startswith(".") or "/" in value or "\0" in value \
            or "\n" in value:
        raise BackupError("%s %r cannot name a backup series directory: it must be non-empty, must not start "
                          "with '.', and must not contain '/', a NUL or a newline; rename it, or give dest_dir "
                          "instead of backup_root" % (what, value))
    return value


def series(bot, engine, database, host=None):
    """The series' key as a dict: bot (``host`` when there is none), engine,
    database and id; BackupError when a part cannot name a directory."""
    bot = bot or host
    check_component("bot name" if bot != host else "host name", bot)
    if engine not in ENGINES:
        raise BackupError("engine %r is not one of %s" % (engine, ", ".join(ENGINES)))
    check_component("%s database name" % engine, database)
    return {"bot": bot, "engine": engine, "database": database, "id": "%s/%s-%s" % (bot, engine, database)}


def series_dir(backup_root, bot, engine, database):
    """``<backup_root>/<bot>/<engine>-<database>``, each part checked."""
    return os.path.join(backup_root, series(bot, engine, database)["id"])
