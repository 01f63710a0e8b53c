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
    is rewritten atomically (temp file, fsync, rename); an unchanged entry changes nothing.
  - Used by the C(botops.runbook.deploy) and C(botops.runbook.rollback) roles.
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
    description: The ledger file (JSON lines), usually C(<bot root>/ledger.jsonl).
    type: path
    required: true
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
"""

RETURN = r"""
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


class LedgerError(Exception):
    pass


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
    for entry in good:
        if entry.get("previous_release") and entry.get("backup"):
            left_behind[entry["previous_release"]] = entry
    return {
        "good_releases": releases,
        "last_good_release": good[-1]["release"] if good else None,
        "left_behind": left_behind,
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", default="read", choices=["read", "present"]),
            entry=dict(type="dict"),
            mode=dict(type="raw", default="0640"),
        ),
        required_if=[("state", "present", ["entry"])],
        supports_check_mode=True,
    )
    path = module.params["path"]
    if not os.path.isdir(os.path.dirname(path) or "."):
        module.fail_json(msg="Cannot use the deploy ledger %s: its directory does not exist; "
                             "create the bot's root directory first" % path)
    try:
        entries = load(path)
    except (LedgerError, OSError) as exc:
        module.fail_json(msg="Cannot read the deploy ledger %s: %s" % (path, to_native(exc)))

    result = dict(changed=False)
    if module.params["state"] == "present":
        new = module.params["entry"]
        if not new.get("id"):
            module.fail_json(msg="Cannot record in the deploy ledger %s: the entry has no id" % path)
        index = next((i for i, e in enumerate(entries) if e["id"] == new["id"]), None)
        before = entries[index] if index is not None else {}
        after = dict(before, **new)
        result["entry"] = after
        if after != before:
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
                    _files.write_text_atomically(
                        path, "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries), mode)
                except OSError as exc:
                    module.fail_json(msg="Cannot write the deploy ledger %s: %s; the previous ledger is unchanged"
                                         % (path, to_native(exc)))
    result["entries"] = entries
    result.update(summarize(entries))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
