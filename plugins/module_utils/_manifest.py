# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The manifest of a backup set, and the names of the set's files.

A backup set on disk is a data file and, beside it, ``<data file>.manifest.json``.
The manifest is written last and atomically: a backup without one is unfinished.
"""

import datetime
import json
import os
import re
import socket
import time

from ansible_collections.botops.runbook.plugins.module_utils._age import ENCRYPTED_SUFFIX
from ansible_collections.botops.runbook.plugins.module_utils._files import BackupError, sha256_file, write_text_atomically
from ansible_collections.botops.runbook.plugins.module_utils._streams import COMPRESSION_SUFFIX
from ansible_collections.botops.runbook.plugins.module_utils._version import COLLECTION_VERSION

MANIFEST_FORMAT = 1
MANIFEST_SUFFIX = ".manifest.json"


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def backup_name(stem, moment, ext, compression, encrypted=False):
    """``<stem>_<YYYYmmddTHHMMSSZ><ext>[.gz|.zst][.age]``: sorts by time, says what it is."""
    return "%s_%s%s%s%s" % (stem, moment.strftime("%Y%m%dT%H%M%SZ"), ext, COMPRESSION_SUFFIX[compression],
                            ENCRYPTED_SUFFIX if encrypted else "")


def manifest_path(data_path):
    return data_path + MANIFEST_SUFFIX


def auto_destination(directory, stem, ext, compression, encrypted=False):
    """(path, created_at) of a new name in ``directory``, never one that exists or
    that a killed run left temporary files for (``.<name>.*.tmp``, its pending
    manifest among them): two backups within one second wait for the next second
    instead of replacing each other or being paired with the other's manifest."""
    while True:
        created = utc_now()
        path = os.path.join(directory, backup_name(stem, created, ext, compression, encrypted))
        leftover = "." + os.path.basename(path) + "."
        if not os.path.lexists(path) and not os.path.lexists(manifest_path(path)) and not any(
                name.startswith(leftover) for name in _names(directory)):
            return path, created
        time.sleep(0.25)


def _names(directory):
    try:
        return os.listdir(directory)
    except OSError:
        return []


def new_manifest(engine, database, created_at, bot=None):
    return {
        "format_version": MANIFEST_FORMAT,
        "engine": engine,
        "host": socket.getfqdn(),
        "bot": bot,
        "database": database,
        "created_at": iso(created_at),
        "files": [],
        "compression": "none",
        "encryption": None,
        "uncompressed_size": None,
        "tables": {},
        "schema_hash": None,
        "verified": None,
        "source": {},
        "tool": {"collection": "botops.runbook", "version": COLLECTION_VERSION},
    }


def manifest_text(manifest):
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def write_manifest(path, manifest, mode=0o600):
    """Write the manifest atomically: it marks the set complete."""
    write_text_atomically(path, manifest_text(manifest), mode)


def write_manifest_file(path, manifest):
    """The manifest into the (temporary, private) file ``path``, for a writer that
    renames it into place itself."""
    with open(path, "w") as handle:
        handle.write(manifest_text(manifest))


_STAMPED = re.compile(r"^(.*_\d{8}T\d{6}Z)\.")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _entry_problem(entry, set_name):
    """Why ``entry`` cannot be a file of the set named ``set_name``, or None. A set
    owns its data file (a directory dump: the files directly in it) and companions
    named like it (``<stem>_<time>.*``); nothing outside its own directory."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        return "an entry is not an object with a name"
    name = entry["name"]
    parts = name.split("/")
    if len(parts) > 2 or any(p in ("", ".", "..") or "\0" in p for p in parts):
        return "file name %r is not a plain name in the set's directory" % name
    stamped = _STAMPED.match(set_name)
    own = parts[0] == set_name if len(parts) == 2 else (
        name == set_name or name.startswith(stamped.group(1) + "." if stamped else set_name + "."))
    if not own:
        return "file name %r does not belong to the set '%s'" % (name, set_name)
    size = entry.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return "file %r has size %r, not a number of bytes" % (name, size)
    if not isinstance(entry.get("sha256"), str) or not _SHA256.match(entry["sha256"]):
        return "file %r has no sha256" % name
    return None


def read_manifest(path):
    """Load and sanity-check a manifest; BackupError says what is wrong with it."""
    try:
        with open(path) as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        raise BackupError("manifest '%s' is missing; a backup without a manifest is unfinished or foreign, "
                          "and cannot be verified" % path)
    except ValueError as exc:
        raise BackupError("manifest '%s' is not valid JSON (%s); the backup set is damaged" % (path, exc))
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list) or not manifest["files"]:
        raise BackupError("manifest '%s' lists no files; the backup set is damaged" % path)
    version = manifest.get("format_version")
    if version != MANIFEST_FORMAT:
        raise BackupError("manifest '%s' has format_version %r; this collection reads format %d"
                          % (path, version, MANIFEST_FORMAT))
    set_name = os.path.basename(path)[:-len(MANIFEST_SUFFIX)] if path.endswith(MANIFEST_SUFFIX) else None
    for entry in manifest["files"]:
        problem = _entry_problem(entry, set_name) if set_name else None
        if problem:
            raise BackupError("manifest '%s' cannot be trusted: %s; the set is damaged or forged" % (path, problem))
    for key in ("tables", "source", "encryption", "verified"):
        if manifest.get(key) is not None and not isinstance(manifest[key], dict):
            raise BackupError("manifest '%s' has %s %r, not an object; the set is damaged" % (path, key, manifest[key]))
    return manifest


def manifest_for_restore(data_path, manifest_file=None, required=True):
    """The manifest of a backup about to be restored: required (BackupError when it
    is missing or damaged), or read when present; None when optional and absent."""
    path = manifest_file or manifest_path(data_path)
    if required or os.path.exists(path):
        return read_manifest(path)
    return None


def verify_against_manifest(data_path, manifest):
    """The data file's size and sha256 match its manifest entry, or BackupError."""
    name = os.path.basename(data_path)
    entries = [entry for entry in manifest["files"] if entry.get("name") == name]
    if not entries:
        raise BackupError("manifest does not list '%s'; the file and manifest do not belong together" % name)
    entry = entries[0]
    size = os.path.getsize(data_path)
    if size != entry.get("size"):
        raise BackupError("backup '%s' is %d bytes but its manifest says %s: the file is truncated or was changed"
                          % (data_path, size, entry.get("size")))
    checksum = sha256_file(data_path)
    if checksum != entry.get("sha256"):
        raise BackupError("backup '%s' does not match its manifest's sha256 (%s, manifest %s): the file is "
                          "damaged or was changed" % (data_path, checksum, entry.get("sha256")))
    return checksum
