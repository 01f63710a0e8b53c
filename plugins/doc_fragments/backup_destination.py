# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment:
    """Where and how a backup set is written, shared by every *_backup module.

    Mirrors backup_destination_argument_spec() in module_utils/_backupset.py."""

    DOCUMENTATION = r"""
options:
  dest:
    description:
      - Path of the backup file to write. An existing file is replaced atomically,
        together with its manifest.
      - Exactly one of O(dest) and O(dest_dir) is required.
    type: path
  dest_dir:
    description:
      - Directory to write the backup into, under an automatic name
        C(<stem>_<YYYYmmddTHHMMSSZ><ext>[.gz|.zst][.age]) in UTC, so names sort by time.
      - The directory must exist.
    type: path
  compression:
    description:
      - How the backup file is compressed. C(auto) is C(zstd) where the managed host
        has the Python C(zstandard) package (Debian C(python3-zstandard)), C(gzip)
        otherwise.
      - An explicit C(zstd) without that package fails and says so; C(gzip) always works.
    type: str
    choices: [auto, none, gzip, zstd]
    default: auto
  compression_level:
    description: Compression level; default 6 for gzip and 3 for zstd.
    type: int
  encrypt_to:
    description:
      - Encrypt the set's files with C(age) to these recipients (public keys, C(age1...)),
        so the host never holds the private key; the files get C(.age) appended. Needs
        the C(age) tool (Debian C(age)). The manifest records the recipients and the
        checksums of both ciphertext and plaintext.
    type: list
    elements: str
    default: []
  lock_timeout:
    description:
      - Seconds to wait when another backup of the same database is running, before
        failing with a clear error.
    type: int
    default: 300
  bot:
    description: Name of the bot, recorded in the manifest (backup sets are grouped by it).
    type: str
notes:
  - The backup is written to a hidden temporary file in the destination directory,
    fsynced, then renamed; its manifest C(<backup>.manifest.json) is written the same
    way, last. A run that is killed or hits a full disk never leaves a file under a
    final name and never touches earlier backups.
  - Files are created with mode C(0600) unless O(mode) says otherwise.
"""
