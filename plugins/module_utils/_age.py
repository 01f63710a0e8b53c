# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encryption of backup sets with age."""

import os

from ansible_collections.botops.runbook.plugins.module_utils._files import BackupError, sha256_file
from ansible_collections.botops.runbook.plugins.module_utils._run import CommandError, run_command

ENCRYPTED_SUFFIX = ".age"

# The bot host encrypts to public recipients only; the private key is needed at
# restore time and never has to live on the bot host.


def _age(module):
    path = module.get_bin_path("age")
    if not path:
        raise BackupError("encryption needs the 'age' tool on the managed host (Debian: age); install it or "
                          "leave encryption off")
    return path


def _age_errors(stderr):
    """age's own error lines (it adds advice lines after them)."""
    return [line.strip() for line in stderr.splitlines() if line.strip().startswith("age: error:")]


def encrypt_file(module, source, dest, recipients):
    """Encrypt ``source`` to ``dest`` for the age ``recipients`` (public keys)."""
    argv = [_age(module), "--encrypt", "--output", dest]
    for recipient in recipients:
        argv += ["--recipient", recipient]
    try:
        run_command(module, argv + [source], "encryption with age", error_lines=_age_errors)
    except CommandError as exc:
        raise BackupError("%s; check the recipients (public keys that start with age1)" % exc, **exc.details)


def decrypt_file(module, source, dest, identity):
    """Decrypt ``source`` to ``dest`` with the private key file ``identity``."""
    if not identity:
        raise BackupError("backup '%s' is encrypted; give the private key file (decrypt_identity) of one of its "
                          "recipients" % source)
    if not os.path.isfile(identity):
        raise BackupError("decryption key file '%s' does not exist" % identity)
    try:
        # The backup's path absolute: a relative one that starts with '-' would be an option.
        run_command(module, [_age(module), "--decrypt", "--identity", identity, "--output", dest,
                             os.path.abspath(source)],
                    "decryption of '%s'" % source, error_lines=_age_errors)
    except CommandError as exc:
        error = (_age_errors(exc.details["stderr"]) or [str(exc)])[0]
        if "no identity matched" in error:
            raise BackupError("cannot decrypt '%s' with the key in '%s': it is not the private key of any recipient "
                              "of this backup; use the key that matches the manifest's recipients" % (source, identity),
                              **exc.details)
        raise BackupError("cannot decrypt '%s': %s; the file is damaged or the key file is wrong" % (source, error),
                          **exc.details)


def is_encrypted(path, manifest):
    return bool((manifest or {}).get("encryption")) or path.endswith(ENCRYPTED_SUFFIX)


def decrypt_verified(module, source, dest, identity, manifest):
    """Decrypt ``source`` to ``dest`` and check the plaintext against the manifest."""
    decrypt_file(module, source, dest, identity)
    expected = ((manifest or {}).get("encryption") or {}).get("plaintext_sha256")
    if expected and sha256_file(dest) != expected:
        raise BackupError("backup '%s' decrypted to content that does not match the manifest's plaintext sha256; "
                          "the backup is damaged" % source)
