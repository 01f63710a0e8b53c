# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backup set's life in one object, the same for every engine.

``BackupSetWriter`` chooses the set's name (inside the database's lock, so an
automatic name never replaces another set), hands out private temporary files
beside it, seals them with age, sets file attributes, publishes every file
(fsync, rename, fsync the directory), then writes the manifest, last: a set
without a manifest is unfinished. On any failure every temporary file it handed
out is removed and nothing under a final name was touched.

``BackupSetReader`` is its twin for a restore: the manifest read, every file of
the set checked against it, the plaintext decrypted and decompressed (never past
the size the manifest records) into a private staging directory (0700) that is
removed with everything in it when the reader is left.

``backup_destination_argument_spec()`` is the argument spec of the
``botops.runbook.backup_destination`` doc fragment, with the same defaults.
"""

import hashlib
import os
import socket
import shutil
import tempfile

from ansible_collections.botops.runbook.plugins.module_utils._age import (
    ENCRYPTED_SUFFIX,
    decrypt_verified,
    encrypt_file,
    is_encrypted,
)
from ansible_collections.botops.runbook.plugins.module_utils._files import (
    BackupError,
    makedirs_private,
    HashingWriter,
    check_destination_dir,
    fsync_dir,
    fsync_file,
    publish,
    remove_quietly,
    sha256_file,
    temp_path,
)
from ansible_collections.botops.runbook.plugins.module_utils._lock import FileLock
from ansible_collections.botops.runbook.plugins.module_utils._series import (
    DATABASE_ADVICE,
    check_addressable,
    check_component,
    series,
    series_dir,
)
from ansible_collections.botops.runbook.plugins.module_utils._manifest import (
    auto_destination,
    backup_name,
    iso,
    manifest_for_restore,
    manifest_path,
    new_manifest,
    utc_now,
    verify_against_manifest,
    write_manifest_file,
)
from ansible_collections.botops.runbook.plugins.module_utils._streams import (
    COMPRESSION_SUFFIX,
    HAS_ZSTANDARD,
    compress_file,
    compression_of,
    decompress_to,
    require_compression,
)
from ansible_collections.botops.runbook.plugins.module_utils._workdir import WorkDir, WorkDirError


def backup_destination_argument_spec():
    """Where and how a set is written: the options of the backup_destination fragment."""
    return dict(
        dest=dict(type="path"),
        dest_dir=dict(type="path"),
        backup_root=dict(type="path"),
        compression=dict(type="str", choices=["auto", "none", "gzip", "zstd"], default="auto"),
        compression_level=dict(type="int"),
        encrypt_to=dict(type="list", elements="str", default=[]),
        lock_timeout=dict(type="int", default=300),
        bot=dict(type="str"),
    )


# The keyword arguments of AnsibleModule that go with that spec.
DESTINATION_RULES = {"mutually_exclusive": [("dest", "dest_dir", "backup_root")],
                     "required_one_of": [("dest", "dest_dir", "backup_root")],
                     "required_by": {"backup_root": "bot"}, "add_file_common_args": True}


def backup_module_args(argument_spec):
    """AnsibleModule's keyword arguments for a backup module: ``argument_spec`` plus
    the backup_destination options and their rules, check mode supported."""
    spec = dict(argument_spec, **backup_destination_argument_spec())
    return dict(argument_spec=spec, supports_check_mode=True, **DESTINATION_RULES)


def resolve_compression(requested):
    """``auto`` is zstd where the host has the zstandard package, gzip otherwise;
    an explicit zstd without the package is refused with what to install."""
    if requested == "auto":
        return "zstd" if HAS_ZSTANDARD else "gzip"
    require_compression(requested)
    return requested


def dir_entries(path, base=None):
    """Manifest entries of a directory dump's files, named ``<base>/<file>`` (``base``:
    the directory's own name by default)."""
    base = base or os.path.basename(path.rstrip("/"))
    return [{"name": "%s/%s" % (base, name), "size": os.path.getsize(os.path.join(path, name)),
             "sha256": sha256_file(os.path.join(path, name))} for name in sorted(os.listdir(path))]


class BackupSetWriter:
    """One set: ``reserve()`` inside the lock, ``temp()``/``temp_dir()`` to write,
    ``seal()`` to encrypt, ``add()`` each file, ``commit(**manifest_fields)``.
    Use it as a context manager: leaving it removes every temporary file."""

    def __init__(self, module, engine, database, stem, ext, name_compression):
        self.module = module
        self.params = module.params
        self.engine = engine
        self.database = database
        self.stem = stem
        self.ext = ext
        self.name_compression = name_compression  # the suffix of the file name (none for a directory)
        self.final = self.params["dest"]
        self.created = None
        # The series first (its parts name directories, the stem a file): refused before anything is written.
        series(self.params["bot"], engine, database, host=socket.getfqdn(), writing=True)
        if not self.final:  # an automatic name: the stem must stay one name in the directory
            check_component("%s database name" % engine, stem, DATABASE_ADVICE)
            check_addressable("%s database name" % engine, stem, DATABASE_ADVICE)
        if self.params.get("backup_root"):
            self.directory = series_dir(self.params["backup_root"], self.params["bot"], engine, database)
        elif self.final:
            self.directory = os.path.dirname(os.path.abspath(self.final))
        else:
            self.directory = self.params["dest_dir"]
        self._temps = []
        self._files = []  # (temp, final path, manifest entry or None for a directory)
        self._name_lock = None

    @property
    def encrypted(self):
        return bool(self.params["encrypt_to"])

    @property
    def series(self):
        """The set's series: bot, engine, database, id and the directory it is in."""
        return dict(series(self.params["bot"], self.engine, self.database, host=socket.getfqdn()), dir=self.directory)

    def predict(self):
        """The path a run would write now, for check mode and the space check."""
        if self.params["dest"]:
            return self.params["dest"]
        return os.path.join(self.directory, backup_name(self.stem, utc_now(), self.ext, self.name_compression,
                                                        self.encrypted))

    @staticmethod
    def manifest_for(path):
        return manifest_path(path)

    def check_space(self, needed_bytes):
        """Before anything is written: the directory exists, is writable, has room.
        A series directory not made yet: its nearest existing parent, under the root."""
        directory = self.directory
        if self.params.get("backup_root"):
            while not os.path.isdir(directory) and directory != os.path.dirname(self.params["backup_root"]):
                directory = os.path.dirname(directory)
        return check_destination_dir(directory, needed_bytes)

    def lock(self, guarded, what):
        """The backup lock of the file ``guarded`` (``lock_timeout``); reserve the name inside it."""
        return FileLock(guarded, what, self.params["lock_timeout"])

    def reserve(self):
        """The set's final name and time. Call it holding the database's lock; a
        second lock, on the name's directory and stem, is held until the set is
        committed or abandoned, so two databases whose files share a name never
        get the same automatic name in one directory either."""
        if self.params.get("backup_root") and not os.path.isdir(self.directory):
            makedirs_private(self.directory)
        directory = os.path.abspath(self.directory)
        self._name_lock = FileLock(directory, "the set names in '%s'" % directory, self.params["lock_timeout"],
                                   path=directory)
        self._name_lock.__enter__()
        if self.params["dest"]:
            self.final, self.created = self.params["dest"], utc_now()
        else:
            self.final, self.created = auto_destination(self.directory, self.stem, self.ext,
                                                        self.name_compression, self.encrypted)
        return self.final

    def beside(self, suffix, compression):
        """A companion file's final path (the globals of a dump): the set's name and
        time with ``suffix``, its compression's and (encrypted) ``.age``."""
        if not self.params["dest"]:
            return os.path.join(self.directory, backup_name(self.stem, self.created, suffix, compression,
                                                            self.encrypted))
        return self.final + suffix + COMPRESSION_SUFFIX[compression] + (ENCRYPTED_SUFFIX if self.encrypted else "")

    def temp(self, final=None):
        """A new private (0600) temporary file beside ``final`` (default: the set)."""
        path = temp_path(final or self.final)
        self._temps.append(path)
        return path

    def temp_dir(self):
        """A free name for a temporary directory beside the set, for a tool that makes it."""
        path = tempfile.mkdtemp(prefix=".%s." % os.path.basename(self.final), suffix=".tmp",
                                dir=os.path.dirname(os.path.abspath(self.final)))
        os.rmdir(path)
        self._temps.append(path)
        return path

    def compressed(self, source, compression, digest=None):
        """(temp, size, sha256): ``source`` compressed into a new temporary file of
        the set; with ``digest`` (a hashlib object) ``source`` is hashed in the same read."""
        out = self.temp()
        with open(out, "wb") as handle:
            sink = HashingWriter(handle)
            compress_file(source, sink, compression, self.params["compression_level"], digest=digest)
        return out, sink.size, sink.sha256

    def file_of_copy(self, copy, compression, pool):
        """(file to publish, its size, its sha256, the copy's sha256) for a copy of
        the set. Uncompressed, the copy itself, hashed while ``pool`` flushes it to
        disk (beside whatever else runs there); compressed, a new file of the set,
        the copy hashed in the compression's read."""
        if compression == "none":
            flushed = pool.submit(fsync_file, copy)
            checksum = sha256_file(copy)
            flushed.result()
            return copy, os.path.getsize(copy), checksum, checksum
        plain = hashlib.sha256()
        out, size, checksum = self.compressed(copy, compression, digest=plain)
        return out, size, checksum, plain.hexdigest()

    def discard(self, path):
        """Remove a temporary file of this set now."""
        remove_quietly(path)
        self._temps.remove(path)

    def seal(self, path, final=None, plain_size=None, plain_sha256=None):
        """(file to publish, encryption record): ``path`` encrypted to the set's
        recipients into a new temporary file, or ``path`` itself without them."""
        if not self.encrypted:
            return path, None
        sealed = self.temp(final)
        encrypt_file(self.module, path, sealed, self.params["encrypt_to"])
        record = {"tool": "age", "recipients": self.params["encrypt_to"],
                  "plaintext_size": os.path.getsize(path) if plain_size is None else plain_size,
                  "plaintext_sha256": sha256_file(path) if plain_sha256 is None else plain_sha256}
        self.discard(path)
        return sealed, record

    def add(self, temp, final=None, size=None, sha256=None):
        """Publish ``temp`` as ``final`` (default: the set's name) at commit; a
        directory is published whole. Returns its manifest entry (a file's)."""
        final = final or self.final
        if os.path.isdir(temp):
            self._files.append((temp, final, None))
            return None
        entry = {"name": os.path.basename(final), "size": os.path.getsize(temp) if size is None else size,
                 "sha256": sha256_file(temp) if sha256 is None else sha256}
        self._files.append((temp, final, entry))
        return entry

    def _attributes(self, path, default_mode):
        args = self.module.load_file_common_arguments(self.params, path=path)
        args["mode"] = self.params["mode"] if self.params["mode"] is not None else default_mode
        self.module.set_fs_attributes_if_different(args, False)

    def commit(self, **fields):
        """Attributes; the manifest (``fields`` added to the common ones) written
        complete under a hidden pending name; every file published; then the
        manifest renamed into place, last. A kill in between leaves published files
        beside their pending manifest: an unfinished set, recognised as such by the
        catalog and cleaned by backup_prune. Returns the manifest's file entries."""
        entries = []
        for temp, final, entry in self._files:
            self._attributes(temp, "0600" if entry else "0700")
            if entry is None:
                for name in os.listdir(temp):
                    os.chmod(os.path.join(temp, name), 0o600)
                entries += dir_entries(temp, base=os.path.basename(final))
            else:
                entries.append(entry)
        manifest = new_manifest(self.engine, self.database, self.created, bot=self.params["bot"])
        manifest.update(fields, files=entries)
        if manifest.get("verified"):
            manifest["verified"] = dict(manifest["verified"], at=iso(utc_now()))
        final_manifest = manifest_path(self.final)
        pending = self.temp(final_manifest)
        write_manifest_file(pending, manifest)
        self._attributes(pending, "0600")
        fsync_file(pending)
        # A replaced set loses its old manifest first: a crash in between leaves a
        # set without a manifest (unfinished), never a manifest that lies.
        # The removal is made durable before new data takes the old name: a power cut
        # in between must not bring the old manifest back beside the new data.
        if remove_quietly(final_manifest):
            fsync_dir(os.path.dirname(os.path.abspath(final_manifest)))
        for temp, final, entry in self._files:
            if entry is None:
                if os.path.isdir(final):
                    shutil.rmtree(final)
                os.rename(temp, final)
                fsync_dir(os.path.dirname(os.path.abspath(final)))
            else:
                publish(temp, final)
            self._temps.remove(temp)
        os.replace(pending, final_manifest)
        self._temps.remove(pending)
        fsync_dir(os.path.dirname(os.path.abspath(final_manifest)))
        return entries

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for path in self._temps:
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                remove_quietly(path)
        self._temps = []
        if self._name_lock is not None:
            self._name_lock.__exit__()
            self._name_lock = None


class _BoundedWriter(HashingWriter):
    """A HashingWriter that refuses to pass more than ``limit`` bytes."""

    def __init__(self, handle, limit, source):
        HashingWriter.__init__(self, handle)
        self.limit, self.source = limit, source

    def write(self, data):
        if self.limit is not None and self.size + len(data) > self.limit:
            raise BackupError("backup '%s' decompresses to more than the %d bytes its manifest records; it is "
                              "damaged or not the backup the manifest describes, and was not restored"
                              % (self.source, self.limit))
        return HashingWriter.write(self, data)


class BackupSetReader:
    """One set to restore: ``verify()`` it, ``plaintext()`` decrypts it,
    ``unpack()`` decompresses it, ``scratch()`` names more files for the restore;
    all of them live in one private staging directory in ``staging_near``
    (default: the backup's directory). Use it as a context manager."""

    def __init__(self, module, src, manifest_file=None, required=True, staging_near=None):
        self.module = module
        self.src = src.rstrip("/")
        if not os.path.exists(self.src):
            raise BackupError("cannot restore from '%s': the backup does not exist" % self.src)
        self.manifest = manifest_for_restore(self.src, manifest_file, required)
        self.staging_near = staging_near or os.path.dirname(os.path.abspath(self.src))
        self._staging = None

    @property
    def encrypted(self):
        return is_encrypted(self.src, self.manifest)

    @property
    def compression(self):
        if os.path.isdir(self.src):
            return "none"
        return (self.manifest or {}).get("compression") or compression_of(self.src)

    @property
    def fingerprint(self):
        """The sha256 of the set's first file, as its manifest records it (None without one)."""
        return self.manifest["files"][0]["sha256"] if self.manifest else None

    def verify(self):
        """Every file of the set matches its manifest entry (a directory dump file by
        file); BackupError names the first that does not. Nothing to do without a manifest."""
        if not self.manifest:
            return
        if not os.path.isdir(self.src):
            verify_against_manifest(self.src, self.manifest)
            return
        base = os.path.basename(self.src)
        listed = {}
        for entry in self.manifest["files"]:
            if entry.get("name", "").startswith(base + "/"):
                listed[entry["name"][len(base) + 1:]] = entry
        present = set(os.listdir(self.src))
        if not listed or set(listed) != present:
            raise BackupError("directory dump '%s' does not match its manifest (%s): restore it under the name its "
                              "manifest gives, with exactly the files the manifest lists"
                              % (self.src, "; ".join(filter(None, [
                                  "the manifest lists no file of '%s'" % base if not listed else "",
                                  "missing: %s" % ", ".join(sorted(set(listed) - present)) if set(listed) - present
                                  else "",
                                  "not listed: %s" % ", ".join(sorted(present - set(listed))) if present - set(listed)
                                  else ""]))))
        for name, entry in sorted(listed.items()):
            verify_against_manifest(os.path.join(self.src, name), {"files": [dict(entry, name=name)]})

    def staging(self):
        """The private staging directory (a ``_workdir.WorkDir`` of kind "restore",
        made on first use): call it before anything irreversible, so that a place it
        cannot be made fails first. It may sit in a directory another user can write
        (the bot's data directory): every path returned here resolves to it through
        ``/proc/<pid>/fd/<fd>``, whatever its name has become, and a run killed on
        the spot leaves it for the next restore there to remove."""
        if self._staging is None:
            try:
                self._staging = WorkDir("restore", self.staging_near)
            except WorkDirError as exc:
                raise BackupError("%s (for the restore of '%s')" % (exc, self.src))
        return self._staging.path

    def scratch(self, name):
        """A path in the private staging directory."""
        return os.path.join(self.staging(), name)

    def plaintext(self, identity):
        """The set's file as its compressor wrote it: the backup itself, or (encrypted)
        decrypted with ``identity`` into the staging directory and checked."""
        if not self.encrypted:
            return self.src
        plain = self.scratch("decrypted")
        decrypt_verified(self.module, self.src, plain, identity, self.manifest)
        return plain

    @property
    def uncompressed_limit(self):
        """The manifest's ``uncompressed_size`` (None where it records none): no
        decompression of this set may pass more bytes."""
        limit = (self.manifest or {}).get("uncompressed_size")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise BackupError("the manifest of '%s' records uncompressed_size %r, not a number of bytes; the "
                              "set is damaged" % (self.src, limit))
        return limit

    def unpack(self, source, name="candidate"):
        """(path, sha256) of ``source`` decompressed into the staging directory: never
        more bytes than the manifest's ``uncompressed_size``, and the content's sha256
        must be the manifest's ``uncompressed_sha256`` where it records one."""
        manifest = self.manifest or {}
        limit = self.uncompressed_limit
        out = self.scratch(name)
        with open(out, "wb") as handle:
            sink = _BoundedWriter(handle, limit, self.src)
            decompress_to(source, self.compression, sink)
        expected = manifest.get("uncompressed_sha256")
        if expected and sink.sha256 != expected:
            raise BackupError("backup '%s' decompressed to content whose sha256 (%s) is not the manifest's (%s); "
                              "the backup is damaged" % (self.src, sink.sha256, expected))
        return out, sink.sha256

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._staging is not None:
            staging, self._staging = self._staging, None
            staging.close()
