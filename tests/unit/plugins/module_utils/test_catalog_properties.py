# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The catalog under any manifest: a bad one is one described problem, the rest
of the tree still reads, and pruning never deletes outside the sets' own files."""

import hashlib
import json
import os
import shutil
import tempfile

from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.botops.runbook.plugins.module_utils._catalog import scan

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=10), inner, max_size=4), max_leaves=12)
NAMES = st.sampled_from(["bot_data_20261122T031500Z.db", "../victim", "/etc/passwd", "a/b/c", "", ".", "x\x00y",
                         "bot_data_20261122T031500Z.globals.sql", "other_20261122T031500Z.db"])
ENTRY = st.fixed_dictionaries({"name": NAMES | st.text(max_size=12), "size": st.integers(-2, 10) | JSON,
                               "sha256": st.just("0" * 64) | JSON})
# A header that reads, so that the examples reach the files and the other fields.
HEADER = st.fixed_dictionaries({
    "format_version": st.just(1), "engine": st.sampled_from(["sqlite", "postgresql"]),
    "database": st.just("bot_data"), "bot": st.sampled_from(["b", None]), "host": st.just("h1"),
    "created_at": st.just("2026-11-22T03:15:00Z")})
BODY = st.fixed_dictionaries({}, optional={
    "files": st.lists(ENTRY, min_size=1, max_size=3), "verified": st.just({"ok": True}) | JSON,
    "tables": JSON, "source": JSON, "encryption": JSON})
ODD_HEADER = st.fixed_dictionaries({
    "format_version": st.just(1) | JSON, "engine": st.sampled_from(["sqlite", "postgresql", None, "x"]) | JSON,
    "database": st.sampled_from(["bot_data", "../up", None]) | JSON, "bot": st.sampled_from(["b", None, ".."]) | JSON,
    "host": st.sampled_from(["h1", None]) | JSON, "created_at": st.just("2026-11-22T03:15:00Z") | JSON,
    "files": st.lists(ENTRY, min_size=1, max_size=3)})
MANIFEST = st.builds(lambda header, body: dict(header, **body), HEADER, BODY) | ODD_HEADER


def good_set(directory):
    data = b"a good set"
    name = "good_20261122T031500Z.db"
    with open(os.path.join(directory, name), "wb") as handle:
        handle.write(data)
    manifest = {"format_version": 1, "engine": "sqlite", "database": "good", "bot": "b", "host": "h",
                "created_at": "2026-11-22T03:15:00Z", "verified": {"ok": True},
                "files": [{"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}]}
    with open(os.path.join(directory, name + ".manifest.json"), "w") as handle:
        json.dump(manifest, handle)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifest=MANIFEST | JSON)
def test_any_manifest_is_a_set_or_one_described_problem(manifest):
    root = tempfile.mkdtemp()
    try:
        good_set(root)
        with open(os.path.join(root, "bot_data_20261122T031500Z.db"), "wb") as handle:
            handle.write(b"data")
        with open(os.path.join(root, "bot_data_20261122T031500Z.db.manifest.json"), "w") as handle:
            json.dump(manifest, handle)
        catalog = scan(root, verify_checksums=True)  # never raises
        names = [s["name"] for s in catalog["sets"]]
        assert "good_20261122T031500Z.db" in names  # the rest of the tree still reads
        for backup in catalog["sets"]:
            for path in backup["files"]:  # what prune could delete stays in the set's own directory
                assert os.path.dirname(os.path.dirname(os.path.abspath(path))) in (root, os.path.dirname(root))
                assert os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)
        if "bot_data_20261122T031500Z.db" not in names:
            assert any("bot_data_20261122T031500Z.db.manifest.json" in p for p in catalog["problems"])
    finally:
        shutil.rmtree(root)
