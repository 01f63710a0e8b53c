# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup sets, the same for every engine: naming, the manifest, atomic writes,
a per-database lock, and compression streams.

A backup set on disk is a data file and, beside it, ``<data file>.manifest.json``.
The manifest is written last and atomically: a backup without one is unfinished.
"""

import datetime
import errno
import fcntl
import gzip
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import zlib

from ansible_collections.botops.runbook.plugins.module_utils._version import COLLECTION_VERSION

try:
    import zstandard
    HAS_ZSTANDARD = True
except ImportError:
    zstandard = None
    HAS_ZSTANDARD = False

MANIFEST_FORMAT = 1
MANIFEST_SUFFIX = ".manifest.json"
COMPRESSION_SUFFIX = {"none": "", "gzip": ".gz", "zstd": ".zst"}
ENCRYPTED_SUFFIX = ".age"
CHUNK = 1024 * 1024
LOCK_DIR = "/run/lock/botops"


class BackupError(Exception):
    """A failure with a message fit for an operator."""


# --- naming ---------------------------------------------------------------

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
    """(path, created_at) of a new name in ``directory``, never one that exists: two
    backups within one second wait for the next second instead of replacing each other."""
    while True:
        created = utc_now()
        path = os.path.join(directory, backup_name(stem, created, ext, compression, encrypted))
        if not os.path.lexists(path) and not os.path.lexists(manifest_path(path)):
            return path, created
        time.sleep(0.25)


# --- files ----------------------------------------------------------------

def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(final_path):
    """A unique, hidden name beside ``final_path`` (same filesystem, so rename is atomic)."""
    directory, name = os.path.split(final_path)
    fd, path = tempfile.mkstemp(prefix=".%s." % name, suffix=".tmp", dir=directory)
    os.close(fd)  # mkstemp created it 0600; writers reopen it
    return path


def publish(temp, final_path):
    """fsync ``temp``, rename it over ``final_path``, fsync the directory."""
    with open(temp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, final_path)
    fsync_dir(os.path.dirname(final_path) or ".")


def remove_quietly(*paths):
    for path in paths:
        if path:
            try:
                os.unlink(path)
            except OSError:
                pass


def describe_os_error(exc, action, path):
    """An operator's sentence for the OS errors a backup meets."""
    if exc.errno == errno.ENOSPC:
        return ("%s failed: no space left on device writing '%s'; free space or choose another destination "
                "(earlier backups were not touched)" % (action, path))
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "%s failed: permission denied on '%s'; run as a user that may write there" % (action, path)
    if exc.errno == errno.EROFS:
        return "%s failed: '%s' is on a read-only filesystem; choose another destination" % (action, path)
    return "%s failed on '%s': %s" % (action, path, exc.strerror or exc)


def check_destination_dir(directory, needed_bytes):
    """Fail before writing anything: directory exists, is writable, has room."""
    if not os.path.isdir(directory):
        raise BackupError("destination directory '%s' does not exist; create it first (mode 0700)" % directory)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise BackupError("destination directory '%s' is not writable by this user" % directory)
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    if free < needed_bytes:
        raise BackupError("not enough free space in '%s': %d bytes free, about %d needed; free space or choose "
                          "another destination" % (directory, free, needed_bytes))
    return free


class HashingWriter:
    """File-like sink that counts and hashes what passes through to ``handle``."""

    def __init__(self, handle):
        self.handle = handle
        self.size = 0
        self.digest = hashlib.sha256()

    def write(self, data):
        self.digest.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def flush(self):
        self.handle.flush()

    @property
    def sha256(self):
        return self.digest.hexdigest()


# --- compression ------------------------------------------------------------

def require_compression(compression):
    if compression == "zstd" and not HAS_ZSTANDARD:
        raise BackupError("compression=zstd needs the Python 'zstandard' package on the managed host "
                          "(Debian: python3-zstandard); install it or use compression=gzip")


def open_compressor(sink, compression, level=None, threads=2, size=-1):
    """A writer that compresses into ``sink`` (close it to end the stream), or
    None for ``none``. gzip has mtime=0: the same input gives the same bytes."""
    if compression == "gzip":
        return gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=level or 6, mtime=0)
    if compression == "zstd":
        require_compression(compression)
        return zstandard.ZstdCompressor(level=level or 3, threads=threads).stream_writer(sink, closefd=False, size=size)
    return None


def compress_file(source, dest_handle, compression, level=None, threads=2, digest=None):
    """Copy ``source`` into ``dest_handle`` compressed; returns the bytes read.
    With ``digest`` (a hashlib object), ``source`` is hashed in the same read."""
    read = 0
    with open(source, "rb") as src:
        stream = open_compressor(dest_handle, compression, level, threads, size=os.path.getsize(source))
        writer = stream or dest_handle
        for block in iter(lambda: src.read(CHUNK), b""):
            if digest is not None:
                digest.update(block)
            writer.write(block)
            read += len(block)
        if stream is not None:
            stream.close()  # ends the gzip member or zstd frame; dest_handle stays open
    return read


def _stream_errors():
    errors = (EOFError, gzip.BadGzipFile, zlib.error)
    return errors + (zstandard.ZstdError,) if HAS_ZSTANDARD else errors


def decompress_to(source, compression, dest_handle):
    """Decompress ``source`` into ``dest_handle``; a damaged or truncated stream
    raises BackupError (a zstd stream that just stops is caught too)."""
    require_compression(compression)
    try:
        with open(source, "rb") as src:
            if compression == "gzip":
                stream = gzip.GzipFile(fileobj=src, mode="rb")
                for block in iter(lambda: stream.read(CHUNK), b""):
                    dest_handle.write(block)
            elif compression == "zstd":
                decoder = zstandard.ZstdDecompressor().decompressobj()
                for block in iter(lambda: src.read(CHUNK), b""):
                    dest_handle.write(decoder.decompress(block))
                if not decoder.eof:
                    raise EOFError("the zstd frame ends early")
            else:
                for block in iter(lambda: src.read(CHUNK), b""):
                    dest_handle.write(block)
    except _stream_errors() as exc:
        raise BackupError("cannot decompress '%s' (%s): %s; the file is damaged or truncated" % (source, compression, exc))


def compression_of(path):
    if path.endswith(ENCRYPTED_SUFFIX):
        path = path[:-len(ENCRYPTED_SUFFIX)]
    for name, suffix in COMPRESSION_SUFFIX.items():
        if suffix and path.endswith(suffix):
            return name
    return "none"


# --- encryption (age) -------------------------------------------------------
# The bot host encrypts to public recipients only; the private key is needed at
# restore time and never has to live on the bot host.

def _age():
    path = shutil.which("age")
    if not path:
        raise BackupError("encryption needs the 'age' tool on the managed host (Debian: age); install it or "
                          "leave encryption off")
    return path


def _age_error(proc):
    """age's own error line (it adds advice lines after it)."""
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("age: error:")]
    return (errors or lines or ["exit status %d" % proc.returncode])[0]


def encrypt_file(source, dest, recipients):
    """Encrypt ``source`` to ``dest`` for the age ``recipients`` (public keys)."""
    argv = [_age(), "--encrypt", "--output", dest]
    for recipient in recipients:
        argv += ["--recipient", recipient]
    proc = subprocess.run(argv + [source], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BackupError("encryption with age failed: %s; check the recipients (public keys that start "
                          "with age1)" % _age_error(proc))


def decrypt_file(source, dest, identity):
    """Decrypt ``source`` to ``dest`` with the private key file ``identity``."""
    if not identity:
        raise BackupError("backup '%s' is encrypted; give the private key file (decrypt_identity) of one of its "
                          "recipients" % source)
    if not os.path.isfile(identity):
        raise BackupError("decryption key file '%s' does not exist" % identity)
    proc = subprocess.run([_age(), "--decrypt", "--identity", identity, "--output", dest, source],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        error = _age_error(proc)
        if "no identity matched" in error:
            raise BackupError("cannot decrypt '%s' with the key in '%s': it is not the private key of any recipient "
                              "of this backup; use the key that matches the manifest's recipients" % (source, identity))
        raise BackupError("cannot decrypt '%s': %s; the file is damaged or the key file is wrong" % (source, error))


def is_encrypted(path, manifest):
    return bool((manifest or {}).get("encryption")) or path.endswith(ENCRYPTED_SUFFIX)


def decrypt_verified(source, dest, identity, manifest):
    """Decrypt ``source`` to ``dest`` and check the plaintext against the manifest."""
    decrypt_file(source, dest, identity)
    expected = ((manifest or {}).get("encryption") or {}).get("plaintext_sha256")
    if expected and sha256_file(dest) != expected:
        raise BackupError("backup '%s' decrypted to content that does not match the manifest's plaintext sha256; "
                          "the backup is damaged" % source)


# --- lock -----------------------------------------------------------------

class DatabaseLock:
    """An exclusive lock per database, so two backups of one database never overlap.

    The lock file lives in /run/lock/botops (or, for a user who may not write
    there, the temp dir), named after the database; ``timeout`` seconds are waited
    for, then a clear error.
    """

    def __init__(self, key, timeout):
        self.key = key
        self.timeout = timeout
        self.name = "botops-%s.lock" % hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        self.path = os.path.join(LOCK_DIR, self.name)
        self.handle = None

    def _open(self):
        try:
            os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
            return open(self.path, "a")
        except OSError:
            self.path = os.path.join(tempfile.gettempdir(), self.name)
            return open(self.path, "a")

    def __enter__(self):
        self.handle = self._open()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self.handle.close()
                    raise BackupError("another backup of '%s' is still running (lock %s held for more than %d s); "
                                      "wait for it to finish or raise lock_timeout" % (self.key, self.path, self.timeout))
                time.sleep(0.2)

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


# --- manifest -------------------------------------------------------------

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


def write_text_atomically(path, text, mode):
    """Replace ``path`` with ``text`` (temp file beside it, fsync, rename): readers
    see the old file or the new one, never a part."""
    temp = temp_path(path)
    try:
        with open(temp, "w") as handle:
            handle.write(text)
        os.chmod(temp, mode)
        publish(temp, path)
    except BaseException:
        remove_quietly(temp)
        raise


def write_manifest(path, manifest, mode=0o600):
    """Write the manifest atomically: it marks the set complete."""
    write_text_atomically(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n", mode)


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
