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
      - Exactly one of O(backup_root), O(dest_dir) and O(dest) is required.
    type: path
  backup_root:
    description:
      - Root of the backup tree. The set goes into its series directory
        C(<backup_root>/<bot>/<engine>-<database>) (C(database) is the SQLite file's
        name without extension, or the PostgreSQL database), under the automatic name
        of O(dest_dir); missing directories are created with mode C(0700).
      - A series is the key (bot, engine, database) that M(botops.runbook.backup_info),
        M(botops.runbook.backup_prune) and the roles group sets by. Needs O(bot).
    type: path
  dest_dir:
    description:
      - Directory to write the backup into, under an automatic name
        C(<stem>_<YYYYmmddTHHMMSSZ><ext>[.gz|.zst][.age]) in UTC, so names sort by time.
      - The directory must exist. Prefer O(backup_root), which computes it.
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
      - A SQLite database is locked with the file C(.<name>.botops.lock) beside it
        (owned like the database, so root and the bot's user exclude each other; a file
        of any other owner, or a symlink, is refused); a PostgreSQL database with an
        advisory lock on its server.
    type: int
    default: 300
  bot:
    description:
      - Name of the bot, recorded in the manifest; with O(backup_root) also the first
        directory of the series. Required with O(backup_root).
    type: str
notes:
  - The backup is written to a hidden temporary file in the destination directory,
    fsynced, then renamed; its manifest C(<backup>.manifest.json) is written the same
    way, last. A run that is killed or hits a full disk never leaves a file under a
    final name and never touches earlier backups.
  - Files are created with mode C(0600) unless O(mode) says otherwise.
"""
