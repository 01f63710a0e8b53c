# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encryption of backup sets with age."""

import os
import shutil
import subprocess

from ansible_collections.botops.runbook.plugins.module_utils._files import BackupError, sha256_file

ENCRYPTED_SUFFIX = ".age"

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
