# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encrypted SQLite backup sets with age: public key on the bot host, private key at restore."""

import json
import os
import shutil
import subprocess

import pytest
from dbtools import sqlite_rows

from ansible_collections.botops.runbook.plugins.module_utils._files import sha256_file
from ansible_collections.botops.runbook.plugins.modules import sqlite_backup, sqlite_restore

pytestmark = pytest.mark.skipif(not shutil.which("age-keygen"), reason="age is installed by scripts/setup.sh")


def keypair(path):
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    return subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def encrypted(run_module, bot_db, tmp_path):
    key = tmp_path / "restore-key.txt"
    recipient = keypair(key)
    out = tmp_path / "backups"
    out.mkdir()
    result = run_module(sqlite_backup, {"path": bot_db[0], "dest_dir": str(out), "encrypt_to": [recipient]})
    assert not result["failed"], result.get("msg")
    return bot_db, key, recipient, result


def test_backup_is_encrypted_to_the_recipient(encrypted):
    dummy, dummy_key, recipient, result = encrypted
    assert result["dest"].endswith(".db.zst.age")
    with open(result["dest"], "rb") as handle:
        assert handle.read(21) == b"age-encryption.org/v1"
    manifest = json.loads(open(result["manifest"]).read())
    assert manifest["encryption"]["tool"] == "age" and manifest["encryption"]["recipients"] == [recipient]
    assert manifest["files"][0]["sha256"] == sha256_file(result["dest"]) == result["checksum"]
    assert manifest["encryption"]["plaintext_sha256"] != result["checksum"]


def test_restore_with_the_private_key(run_module, encrypted):
    (path, counts), key, dummy, backup = encrypted
    conn_rows_before = sqlite_rows(path)
    result = run_module(sqlite_restore, {"src": backup["dest"], "path": path + ".restored", "decrypt_identity": str(key)})
    assert not result["failed"], result.get("msg")
    assert sqlite_rows(path + ".restored") == counts == conn_rows_before


def test_restore_without_or_with_a_wrong_key_is_refused(run_module, encrypted, tmp_path):
    (path, dummy), dummy_key, dummy_recipient, backup = encrypted
    before = sha256_file(path)
    missing = run_module(sqlite_restore, {"src": backup["dest"], "path": path})
    assert missing["failed"] and "is encrypted" in missing["msg"] and "decrypt_identity" in missing["msg"]
    other = tmp_path / "someone-else.txt"
    keypair(other)
    wrong = run_module(sqlite_restore, {"src": backup["dest"], "path": path, "decrypt_identity": str(other)})
    assert wrong["failed"] and "not the private key of any recipient" in wrong["msg"]
    # One failure path: the program's rc, stderr and command line come with the message.
    assert wrong["rc"] == 1 and "no identity matched" in wrong["stderr"]
    assert wrong["cmd"].endswith("--decrypt --identity %s --output %s %s" % (
        other, wrong["cmd"].split("--output ")[1].split(" ")[0], backup["dest"]))
    assert sha256_file(path) == before
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_bad_recipient_is_a_clear_error(run_module, bot_db, tmp_path):
    out = tmp_path / "backups"
    out.mkdir()
    result = run_module(sqlite_backup, {"path": bot_db[0], "dest_dir": str(out), "encrypt_to": ["not-a-key"]})
    assert result["failed"] and "encryption with age failed (rc=1): age: error:" in result["msg"]
    assert result["rc"] == 1 and "age: error:" in result["stderr"] and "--recipient not-a-key" in result["cmd"]
    assert list(out.iterdir()) == []
