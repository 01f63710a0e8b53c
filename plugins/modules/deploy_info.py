#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: deploy_info
short_description: What botops.runbook.deploy deployed on a host - its bots, their databases, .env files and units
version_added: 0.1.0
description:
  - Reads the files the M(botops.runbook.deploy) role publishes, one per bot, C(<path>/<bot>.json) (root, mode
    C(0600)), so the backup, check and maintenance roles cover a deployed bot's database without the inventory
    repeating it.
  - A PostgreSQL database carries the bot's password (C(login_password)), so give the task C(no_log=true).
author:
  - botops.runbook developers (@botops)
attributes:
  check_mode:
    support: full
    description: The module is read-only; check mode does the same.
  diff_mode:
    support: none
    description: Nothing is changed.
options:
  path:
    description: The directory of the published files. A missing directory means no deployed bot.
    type: path
    default: /etc/botops/bots.d
"""

EXAMPLES = r"""
- name: The bots deployed here
  botops.runbook.deploy_info:
  register: deployed
  no_log: true
"""

RETURN = r"""
bots:
  description: The deployed bots, sorted by name.
  returned: always
  type: list
  elements: dict
  sample:
    - bot: samplebot
      root: /srv/samplebot
      unit: samplebot.service
      env_file: /srv/samplebot/shared/.env
      databases: [{engine: sqlite, path: /srv/samplebot/shared/data/bot_data.db, bot: samplebot}]
databases:
  description: The databases of all of them, in the form of botops_databases entries.
  returned: always
  type: list
  elements: dict
  sample: [{engine: sqlite, path: /srv/samplebot/shared/data/bot_data.db, bot: samplebot}]
problems:
  description: Files that could not be read or are not a bot's description (each named, with the cause).
  returned: always
  type: list
  elements: str
  sample: []
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule


def read_published(path):
    """(bots, problems) from the <bot>.json files in `path` (none when it is missing)."""
    bots, problems = [], []
    try:
        names = sorted(name for name in os.listdir(path) if name.endswith(".json") and not name.startswith("."))
    except FileNotFoundError:
        return bots, problems
    except OSError as exc:
        return bots, ["cannot list %s: %s" % (path, exc.strerror)]
    for name in names:
        file_name = os.path.join(path, name)
        try:
            with open(file_name, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError) as exc:
            problems.append("cannot read %s: %s" % (file_name, exc))
            continue
        if not isinstance(data, dict) or not isinstance(data.get("bot"), str) or not isinstance(data.get("databases", []), list):
            problems.append("%s is not a bot's description (bot, databases, ...)" % file_name)
            continue
        bots.append(data)
    return bots, problems


def main():
    module = AnsibleModule(argument_spec=dict(path=dict(type="path", default="/etc/botops/bots.d")), supports_check_mode=True)
    bots, problems = read_published(module.params["path"])
    databases = [entry for bot in bots for entry in bot.get("databases", []) if isinstance(entry, dict)]
    module.exit_json(changed=False, bots=bots, databases=databases, problems=problems)


if __name__ == "__main__":
    main()
