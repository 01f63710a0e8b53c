# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The catalog of backup sets in a directory tree, read from their manifests.

Everything that is not a complete set is reported, never ignored: a manifest that
cannot be read, a manifest whose file is gone, a file no manifest lists, a
checksum that does not match, and leftover temporary files of killed runs.
"""

import datetime
import os

from ansible_collections.botops.runbook.plugins.module_utils._files import BackupError, sha256_file
from ansible_collections.botops.runbook.plugins.module_utils._lock import is_lock_file
from ansible_collections.botops.runbook.plugins.module_utils._manifest import MANIFEST_SUFFIX, read_manifest
from ansible_collections.botops.runbook.plugins.module_utils._series import series


def parse_time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def is_temporary(name):
    return name.startswith(".") and name.endswith(".tmp")


def _walk(root, recurse):
    if recurse:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not is_temporary(d)]
            yield dirpath, filenames, [d for d in os.listdir(dirpath) if is_temporary(d)]
    else:
        names = os.listdir(root)
        yield root, [n for n in names if os.path.isfile(os.path.join(root, n))], [
            n for n in names if is_temporary(n) and os.path.isdir(os.path.join(root, n))]


def scan(root, recurse=True, verify_checksums=False, now=None):
    """Returns {sets, problems, unknown_files, unfinished, temporary_files}; sets
    newest first. ``unfinished``: files of a set whose run was killed between
    publishing them and its manifest ({path, pending_manifest}); not a problem,
    and backup_prune removes them with their pending manifest after its grace."""
    if not os.path.isdir(root):
        raise BackupError("backup directory '%s' does not exist" % root)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    sets, problems, referenced, files, temporary = [], [], set(), [], []
    for dirpath, filenames, temp_dirs in _walk(root, recurse):
        temporary += [os.path.join(dirpath, d) for d in temp_dirs]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if is_lock_file(name):
                continue  # a backup lock (see _lock), not part of any set
            if name.endswith(MANIFEST_SUFFIX):
                backup = _read_set(path, verify_checksums, now, problems)
                if backup:
                    sets.append(backup)
                    referenced.update(backup["files"])
                referenced.add(path)
            elif is_temporary(name):
                temporary.append(path)
            else:
                files.append(path)
    unknown, unfinished = [], []
    for path in sorted(p for p in files if p not in referenced):
        prefix = os.path.join(os.path.dirname(path), ".%s%s." % (os.path.basename(path), MANIFEST_SUFFIX))
        pending = [t for t in temporary if t.startswith(prefix) and _lists(t, os.path.basename(path))]
        if pending:  # the newest: an earlier killed run under an explicit dest may have left one too
            unfinished.append({"path": path, "pending_manifest": max(pending, key=_mtime)})
        else:
            unknown.append(path)
    problems += ["file '%s' has no manifest: unfinished, or not made by this collection" % p for p in unknown]
    sets.sort(key=lambda b: b["created_at"], reverse=True)
    return {"sets": sets, "problems": problems, "unknown_files": unknown, "unfinished": unfinished,
            "temporary_files": sorted(temporary)}


def _mtime(path):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def _lists(pending_manifest, name):
    """The pending manifest is complete and names the file ``name``."""
    try:
        return any(entry.get("name") == name for entry in read_manifest(pending_manifest)["files"])
    except (BackupError, OSError):
        return False


def _read_set(manifest_file, verify_checksums, now, problems):
    try:
        manifest = read_manifest(manifest_file)
        created_at = parse_time(manifest["created_at"])
    except (BackupError, KeyError, ValueError, TypeError) as exc:
        problems.append("manifest '%s' cannot be used: %s" % (manifest_file, exc))
        return None
    directory = os.path.dirname(manifest_file)
    try:
        identity = dict(series(manifest.get("bot"), manifest.get("engine"), manifest.get("database"),
                               host=manifest.get("host")), dir=directory)
    except BackupError as exc:
        problems.append("manifest '%s' cannot be used: %s" % (manifest_file, exc))
        return None
    paths = [os.path.join(directory, entry["name"]) for entry in manifest["files"]]
    backup = {
        "path": manifest_file[:-len(MANIFEST_SUFFIX)],
        "name": os.path.basename(manifest_file[:-len(MANIFEST_SUFFIX)]),
        "manifest": manifest_file,
        "files": paths,
        "engine": manifest.get("engine"),
        "database": manifest.get("database"),
        "host": manifest.get("host"),
        "bot": manifest.get("bot"),
        "series": identity,
        "created_at": created_at,
        "age": int((now - created_at).total_seconds()),
        "size": sum(entry.get("size") or 0 for entry in manifest["files"]),
        "compression": manifest.get("compression"),
        "encryption": manifest.get("encryption"),
        "verified": bool((manifest.get("verified") or {}).get("ok")),
        "duration": _duration(created_at, manifest.get("verified")),
        "complete": True,
        "checksums": "not checked",
    }
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        backup.update(complete=False, verified=False)
        problems.append("manifest '%s' lists %s, which %s gone" % (
            manifest_file, ", ".join("'%s'" % p for p in missing), "is" if len(missing) == 1 else "are"))
    elif verify_checksums:
        bad = [p for p, entry in zip(paths, manifest["files"]) if sha256_file(p) != entry.get("sha256")]
        backup["checksums"] = "mismatch" if bad else "ok"
        if bad:
            backup["verified"] = False
            problems.append("backup '%s' does not match its manifest's sha256: %s" % (
                backup["path"], ", ".join(bad)))
    return backup


def _duration(created_at, verified):
    """Seconds from the start of the backup (created_at) to the end of its
    verification, or None when the manifest does not say."""
    try:
        return max(0, int((parse_time(verified["at"]) - created_at).total_seconds()))
    except (KeyError, TypeError, ValueError):
        return None


def as_result(backup):
    """A set as a module returns it (times as text)."""
    return dict(backup, created_at=backup["created_at"].strftime("%Y-%m-%dT%H:%M:%SZ"))


def by_series(sets):
    """{series id: [sets, newest first]} of ``sets`` (newest first themselves)."""
    groups = {}
    for backup in sets:
        groups.setdefault(backup["series"]["id"], []).append(backup)
    return groups
