# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compression streams (gzip, zstd) for backup sets: compress on the way to
disk, decompress on the way back, a damaged stream named as such."""

import gzip
import os
import zlib

from ansible_collections.botops.runbook.plugins.module_utils._age import ENCRYPTED_SUFFIX
from ansible_collections.botops.runbook.plugins.module_utils._files import CHUNK, BackupError

try:
    import zstandard
    HAS_ZSTANDARD = True
except ImportError:
    zstandard = None
    HAS_ZSTANDARD = False

COMPRESSION_SUFFIX = {"none": "", "gzip": ".gz", "zstd": ".zst"}

# zstd is fed this many bytes at a time: a block holds at most 128 KiB and takes at
# least 4 bytes, so one step never yields more than 16 MiB however the stream was
# crafted (a 32 KB frame can hold 1 GiB of zeros). gzip reads CHUNK-sized output.
ZSTD_STEP = 512


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


class _Limited(object):
    """Passes writes on until more than ``limit`` bytes would have passed."""

    def __init__(self, handle, limit, source):
        self.handle, self.limit, self.source, self.size = handle, limit, source, 0

    def write(self, data):
        self.size += len(data)
        if self.size > self.limit:
            raise BackupError("backup '%s' decompresses to more than the %d bytes its manifest records; it is "
                              "damaged or not the backup the manifest describes, and was not restored"
                              % (self.source, self.limit))
        return self.handle.write(data)


def decompress_to(source, compression, dest_handle, limit=None):
    """Decompress ``source`` into ``dest_handle``; a damaged or truncated stream
    raises BackupError (a zstd stream that just stops is caught too), and so does
    one that inflates to more than ``limit`` bytes (a decompression bomb is
    stopped at the limit, never written out whole)."""
    require_compression(compression)
    if limit is not None:
        dest_handle = _Limited(dest_handle, limit, source)
    try:
        with open(source, "rb") as src:
            if compression == "gzip":
                stream = gzip.GzipFile(fileobj=src, mode="rb")
                for block in iter(lambda: stream.read(CHUNK), b""):
                    dest_handle.write(block)
            elif compression == "zstd":
                decoder = zstandard.ZstdDecompressor().decompressobj()
                for block in iter(lambda: src.read(CHUNK), b""):
                    view = memoryview(block)
                    for start in range(0, len(view), ZSTD_STEP):
                        dest_handle.write(decoder.decompress(view[start:start + ZSTD_STEP]))
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
