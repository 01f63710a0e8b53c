#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: deploy_ledger
short_description: Read or record the deploy ledger of a bot (one JSON line per deploy or rollback)
version_added: 0.1.0
description:
  - The ledger is the memory that the runbooks' "roll back by hand" lacks - for every
    deploy and rollback, the release, the release it replaced, the pre-deploy backup,
    the schema version before and after, the times and the outcome.
  - O(state=read) returns the entries and what the roles need from them - the releases
    that went live successfully, the last good one, and for each release the backup
    taken when the bot last left it (the database to restore when going back to it).
  - O(state=present) adds an entry, or updates the entry with the same C(id) (a deploy
    records itself as C(in_progress) before it switches, then its outcome). The file
    is rewritten atomically (temp file, fsync, rename) under a lock (see O(lock_timeout));
    an unchanged entry changes nothing.
  - With O(root) instead of O(path), the module also reads the bot's release layout -
    the paths under the root, the live release (the target of the C(current) link)
    and the finished releases on the host - so that no role composes these in Jinja.
  - Used by the C(botops.runbook._release) role, on behalf of C(botops.runbook.deploy)
    and C(botops.runbook.rollback).
author:
  - botops.runbook developers (@botops)
attributes:
  check_mode:
    support: full
    description: Reports whether the entry would be added or changed, writes nothing.
  diff_mode:
    support: full
    description: Shows the entry before and after.
options:
  path:
    description:
      - The ledger file (JSON lines).
      - Exactly one of O(path) and O(root) is required.
    type: path
  root:
    description:
      - The bot's root directory. The ledger is C(<root>/ledger.jsonl), and the result
        adds RV(paths), RV(live_release) and RV(releases).
      - A root that does not exist yet (before a first deploy) reads as an empty ledger
        with no live release; O(state=present) needs it to exist.
      - Exactly one of O(path) and O(root) is required.
    type: path
  state:
    description: C(read) the ledger, or make O(entry) C(present) in it.
    type: str
    choices: [read, present]
    default: read
  entry:
    description:
      - The entry to add or update (O(state=present)). C(id) identifies it; the other
        keys are free, and the roles write C(kind), C(release), C(previous_release),
        C(backup), C(schema_before), C(schema_after), C(started_at), C(finished_at),
        C(outcome) (C(in_progress), C(success), C(failed), C(rolled_back)) and C(message).
      - Keys given are merged into an existing entry with the same C(id).
    type: dict
  mode:
    description: File mode of a ledger this module creates.
    type: raw
    default: "0640"
  lock_timeout:
    description:
      - Seconds to wait when another run is recording in the same ledger (O(state=present)),
        before failing with a clear error.
      - The ledger is read, merged and rewritten holding the lock file
        C(.<name>.botops.lock) beside it (owned like the ledger; a file of any other
        owner, or a symlink, is refused), so that two runs recording at once never
        lose each other's entry.
    type: int
    default: 30
"""

EXAMPLES = r"""
- name: Record a deploy before the switch
  botops.runbook.deploy_ledger:
    path: /srv/samplebot/ledger.jsonl
    state: present
    entry:
      id: "1.1.0-20261122T201500Z"
      kind: deploy
      release: "1.1.0"
      previous_release: "1.0.0"
      backup: /var/backups/botops/samplebot/sqlite-bot_data/bot_data_20261122T201500Z.db.zst
      schema_before: "0001"
      outcome: in_progress

- name: Read it back
  botops.runbook.deploy_ledger:
    path: /srv/samplebot/ledger.jsonl
  register: ledger

- name: The database as it was when the bot last left 1.0.0
  ansible.builtin.debug:
    msg: "{{ ledger.left_behind['1.0.0'].backup }}"

- name: Read a bot's releases, its live release and its ledger
  botops.runbook.deploy_ledger:
    root: /srv/samplebot
  register: state

- name: The release to go back to from the live one
  ansible.builtin.debug:
    msg: "{{ state.live_release }} replaced {{ state.replaced[state.live_release] | default('nothing', true) }}"
"""

RETURN = r"""
elapsed:
  description: Seconds the module took.
  returned: always
  type: float
  sample: 0.01
entries:
  description: Every entry, oldest first.
  returned: always
  type: list
  elements: dict
  sample: [{"id": "1.0.0-20261122T200000Z", "kind": "deploy", "release": "1.0.0", "outcome": "success"}]
good_releases:
  description: Releases that went live successfully (by a deploy or a rollback), oldest first, each once at its latest place.
  returned: always
  type: list
  elements: str
  sample: ["1.0.0", "1.1.0"]
last_good_release:
  description: The release of the newest successful entry, or null.
  returned: always
  type: str
  sample: "1.1.0"
left_behind:
  description:
    - For each release, the newest successful entry that replaced it and recorded a
      backup - its C(backup) holds the database as it was under that release.
  returned: always
  type: dict
  sample: {"1.0.0": {"id": "1.1.0-20261122T201500Z", "backup": "/var/backups/botops/samplebot/sqlite-bot_data/bot_data_20261122T201500Z.db"}}
replaced:
  description:
    - For each release, the release it replaced when it was last deployed successfully
      (the C(previous_release) of its newest successful C(deploy) entry), or null for a
      first deploy. A rollback from a release goes back to this one.
  returned: always
  type: dict
  sample: {"1.0.0": null, "1.1.0": "1.0.0"}
paths:
  description: The bot's layout under O(root) (whether or not it exists yet).
  returned: when O(root) is given
  type: dict
  contains:
    root:
      description: The bot's root.
      type: str
      sample: /srv/samplebot
    releases:
      description: The directory of the releases, one C(<id>) directory each.
      type: str
      sample: /srv/samplebot/releases
    shared:
      description: What every release shares (data, logs, C(.env), settings).
      type: str
      sample: /srv/samplebot/shared
    current:
      description: The link to the live release (C(releases/<id>), relative).
      type: str
      sample: /srv/samplebot/current
    ledger:
      description: The ledger.
      type: str
      sample: /srv/samplebot/ledger.jsonl
    safety:
      description: Where a rollback keeps the database it replaced.
      type: str
      sample: /srv/samplebot/safety
    release_marker:
      description: The file, inside a release, whose presence makes the release finished.
      type: str
      sample: .botops-release.json
  sample: {"root": "/srv/samplebot", "releases": "/srv/samplebot/releases", "shared": "/srv/samplebot/shared",
           "current": "/srv/samplebot/current", "ledger": "/srv/samplebot/ledger.jsonl", "safety": "/srv/samplebot/safety",
           "release_marker": ".botops-release.json"}
live_release:
  description: The release the C(current) link points to; empty when there is no such link.
  returned: when O(root) is given
  type: str
  sample: "1.0.0"
releases:
  description:
    - The finished releases on the host (a directory under C(releases/) holding the
      RV(paths.release_marker)), oldest first by the directory's modification time.
  returned: when O(root) is given
  type: list
  elements: str
  sample: ["1.0.0", "1.1.0"]
entry:
  description: The entry as recorded (O(state=present)).
  returned: when state is present
  type: dict
  sample: {"id": "1.1.0-20261122T201500Z", "outcome": "success"}
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.botops.runbook.plugins.module_utils import _files
from ansible_collections.botops.runbook.plugins.module_utils._lock import FileLock
from ansible_collections.botops.runbook.plugins.module_utils._run import ModuleError, run_main


# The layout under a bot's root, named here once for every role (see RETURN paths).
RELEASE_MARKER = ".botops-release.json"


class LedgerError(ModuleError):
    """A ledger that cannot be read or written, in words."""


def layout(root):
    root = root.rstrip("/") or "/"
    return {
        "root": root,
        "releases": os.path.join(root, "releases"),
        "shared": os.path.join(root, "shared"),
        "current": os.path.join(root, "current"),
        "ledger": os.path.join(root, "ledger.jsonl"),
        "safety": os.path.join(root, "safety"),
        "release_marker": RELEASE_MARKER,
    }


def live_release(paths):
    """The release the current link points to, or '' (no link, or not a link)."""
    if not os.path.islink(paths["current"]):
        return ""
    return os.path.basename(os.readlink(paths["current"]).rstrip("/"))


def finished_releases(paths):
    """Release ids with a finished marker, oldest first (directory mtime, then name)."""
    try:
        names = os.listdir(paths["releases"])
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        directory = os.path.join(paths["releases"], name)
        if os.path.isdir(directory) and os.path.isfile(os.path.join(directory, RELEASE_MARKER)):
            found.append((os.stat(directory).st_mtime, name))
    return [name for _mtime, name in sorted(found)]


def load(path):
    if not os.path.exists(path):
        return []
    entries = []
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError as exc:
                raise LedgerError("line %d is not JSON (%s); fix or remove that line" % (number, exc))
            if not isinstance(entry, dict) or "id" not in entry:
                raise LedgerError("line %d is not an entry with an id; fix or remove that line" % number)
            entries.append(entry)
    return entries


def summarize(entries):
    good = [e for e in entries if e.get("outcome") == "success" and e.get("release")]
    releases = []
    for entry in good:
        if entry["release"] in releases:
            releases.remove(entry["release"])
        releases.append(entry["release"])
    left_behind = {}
    replaced = {}
    for entry in good:
        if entry.get("previous_release") and entry.get("backup"):
            left_behind[entry["previous_release"]] = entry
        if entry.get("kind") == "deploy":
            replaced[entry["release"]] = entry.get("previous_release") or None
    return {
        "good_releases": releases,
        "last_good_release": good[-1]["release"] if good else None,
        "left_behind": left_behind,
        "replaced": replaced,
    }


def ledger(module, result):
    paths = None
    if module.params["root"]:
        paths = layout(module.params["root"])
        path = paths["ledger"]
        result.update(paths=paths, live_release=live_release(paths), releases=finished_releases(paths))
    else:
        path = module.params["path"]
    # Before a first deploy the root is not there yet: nothing deployed, nothing recorded.
    first_read = paths is not None and module.params["state"] == "read" and not os.path.exists(paths["root"])
    if not first_read and not os.path.isdir(os.path.dirname(path) or "."):
        raise LedgerError("Cannot use the deploy ledger %s: its directory does not exist; "
                          "create the bot's root directory first" % path)
    if module.params["state"] == "present" and not module.check_mode:
        # Read, merge and rewrite holding the ledger's lock: two runs that each
        # rewrote the ledger they had read would lose the other's entry.
        with FileLock(path, "the deploy ledger %s" % path, module.params["lock_timeout"], activity="write of"):
            # A writer killed before its rename left its temp file: this run holds
            # the lock every writer takes, so no live writer owns one now.
            _files.sweep_temps(path)
            entries = read(path)
            record(module, path, entries, result)
    else:
        entries = read(path)
        if module.params["state"] == "present":
            record(module, path, entries, result)
    result["entries"] = entries
    result.update(summarize(entries))


def read(path):
    try:
        return load(path)
    except (LedgerError, OSError) as exc:
        raise LedgerError("Cannot read the deploy ledger %s: %s" % (path, to_native(exc)))


def record(module, path, entries, result):
    """The entry added or merged by id, the ledger rewritten atomically when it changed."""
    new = module.params["entry"]
    if not new.get("id"):
        raise LedgerError("Cannot record in the deploy ledger %s: the entry has no id" % path)
    index = next((i for i, e in enumerate(entries) if e["id"] == new["id"]), None)
    before = entries[index] if index is not None else {}
    after = dict(before, **new)
    result["entry"] = after
    if after == before:
        return
    result["changed"] = True
    if module._diff:
        result["diff"] = dict(before=json.dumps(before, indent=2, sort_keys=True) + "\n",
                              after=json.dumps(after, indent=2, sort_keys=True) + "\n")
    if index is None:
        entries.append(after)
    else:
        entries[index] = after
    if not module.check_mode:
        mode = int(module.params["mode"], 8) if isinstance(module.params["mode"], str) else module.params["mode"]
        try:
            _files.write_text_atomically(path, "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries), mode)
        except OSError as exc:
            raise LedgerError("Cannot write the deploy ledger %s: %s; the previous ledger is unchanged"
                              % (path, to_native(exc)))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path"),
            root=dict(type="path"),
            state=dict(type="str", default="read", choices=["read", "present"]),
            entry=dict(type="dict"),
            mode=dict(type="raw", default="0640"),
            lock_timeout=dict(type="int", default=30),
        ),
        required_one_of=[("path", "root")],
        mutually_exclusive=[("path", "root")],
        required_if=[("state", "present", ["entry"])],
        supports_check_mode=True,
    )
    where = module.params["root"] or module.params["path"]
    run_main(module, lambda result: ledger(module, result), {"changed": False}, "the deploy ledger of '%s'" % where,
             subject=where)


if __name__ == "__main__":
    main()
