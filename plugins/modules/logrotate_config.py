#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: logrotate_config
short_description: A file in /etc/logrotate.d that lands only when logrotate accepts it with the rest of the configuration
version_added: 0.1.0
description:
  - Writes O(content) to O(dest_dir)/O(name) atomically, but only after C(logrotate -d) has read the whole
    configuration (O(config) and every file it includes) with the new file in place and found no new error.
  - The check runs in a private copy of the configuration, so the real one is never touched before the
    new file is known to be good, and check mode validates exactly as a real run does.
  - C(logrotate -d) does not always exit non-zero on a bad file (unknown options and duplicate log entries
    exit 0, logrotate issues 22 and 199), so every C(error:) line counts. Errors the configuration already
    had without this file (another package's) are reported as warnings, not blamed on it.
  - The distribution's O(config) is never rewritten.
author:
  - botops.runbook developers (@botops)
attributes:
  check_mode:
    support: full
    description: Validates as a real run does and reports whether the file would change.
  diff_mode:
    support: full
    description: The file before and after.
options:
  name:
    description:
      - The file's name in O(dest_dir); letters, digits, C(_) and C(-) only (logrotate silently skips
        names with some extensions, such as C(.disabled) or C(~)).
    type: str
    required: true
  content:
    description: The configuration. Required with O(state=present).
    type: str
  state:
    description: C(absent) removes the file.
    type: str
    choices: [present, absent]
    default: present
  config:
    description: The main configuration, which must include O(dest_dir).
    type: path
    default: /etc/logrotate.conf
  dest_dir:
    description: The include directory the file goes to.
    type: path
    default: /etc/logrotate.d
  logrotate:
    description: The logrotate program.
    type: path
    default: /usr/sbin/logrotate
"""

EXAMPLES = r"""
- name: Rotate the bot's logs
  botops.runbook.logrotate_config:
    name: botops-samplebot
    content: |
      /srv/samplebot/shared/logs/*.log {
          daily
          rotate 14
          compress
          delaycompress
          missingok
          notifempty
          copytruncate
      }
"""

RETURN = r"""
path:
  description: The file written (or that would be).
  returned: always
  type: str
  sample: /etc/logrotate.d/botops-samplebot
errors:
  description: The new C(error:) lines C(logrotate -d) gave with the file in place (empty on success).
  returned: always
  type: list
  elements: str
  sample: ["error: /etc/logrotate.d/botops-samplebot:3 unknown option 'rotat' -- ignoring line"]
"""

import os
import re
import shutil
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botops.runbook.plugins.module_utils._files import write_text_atomically

NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _include_re(dest_dir):
    return re.compile(r"^(\s*include\s+)%s/?\s*$" % re.escape(dest_dir.rstrip("/")), re.MULTILINE)


def mirror(config, dest_dir, name, content, work):
    """A copy of the configuration under ``work``: the main file, its include
    directory without ``name``, then (``content`` not None) with it."""
    with open(config) as handle:
        main = handle.read()
    included = os.path.join(work, "d")
    os.makedirs(included, exist_ok=True)
    main, found = _include_re(dest_dir).subn(lambda m: m.group(1) + included, main)
    if not found:
        raise ValueError("%s does not include %s, so logrotate would never read a file there; add "
                         "'include %s' to it or choose dest_dir" % (config, dest_dir, dest_dir))
    with open(os.path.join(work, "logrotate.conf"), "w") as handle:
        handle.write(main)
    for entry in sorted(os.listdir(dest_dir)) if os.path.isdir(dest_dir) else []:
        source = os.path.join(dest_dir, entry)
        if entry != name and os.path.isfile(source):
            shutil.copy2(source, os.path.join(included, entry))
    target = os.path.join(included, name)
    if content is None:
        if os.path.exists(target):
            os.unlink(target)
    else:
        with open(target, "w") as handle:
            handle.write(content)
        os.chmod(target, 0o644)
    return os.path.join(work, "logrotate.conf")


def debug_errors(logrotate, main, work, dest_dir, config):
    """(rc, error lines) of ``logrotate -d`` on the mirrored configuration, with the
    mirror's paths put back to the real ones."""
    done = subprocess.run([logrotate, "-d", "-s", os.path.join(work, "status"), main],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=120, check=False)
    text = done.stdout.replace(os.path.join(work, "d"), dest_dir.rstrip("/")).replace(main, config)
    return done.returncode, [line.strip() for line in text.splitlines() if line.strip().startswith("error:")]


def run(module, result):
    params = module.params
    name, dest_dir, config = params["name"], params["dest_dir"], params["config"]
    if not NAME.match(name):
        module.fail_json(msg="logrotate_config: name %r is not a plain file name (letters, digits, '_' and '-'): "
                             "logrotate skips some names in %s without a word; choose another" % (name, dest_dir),
                         **result)
    path = os.path.join(dest_dir, name)
    result["path"] = path
    content = params["content"] if params["state"] == "present" else None
    if params["state"] == "present" and content is None:
        module.fail_json(msg="logrotate_config: content is required with state=present", **result)
    if content is not None and not content.endswith("\n"):
        content += "\n"
    try:
        with open(path) as handle:
            before = handle.read()
    except FileNotFoundError:
        before = None
    result["changed"] = before != content
    if module._diff:
        result["diff"] = {"before": before or "", "after": content or "", "before_header": path,
                          "after_header": path}
    if content is not None:
        if not os.path.isfile(params["logrotate"]):
            module.fail_json(msg="logrotate_config: %s does not exist: install logrotate" % params["logrotate"],
                             **result)
        work = tempfile.mkdtemp(prefix="botops-logrotate-")
        try:
            try:
                baseline_main = mirror(config, dest_dir, name, None, os.path.join(work, "before"))
                new_main = mirror(config, dest_dir, name, content, os.path.join(work, "after"))
            except (OSError, ValueError) as exc:
                module.fail_json(msg="logrotate_config: cannot check %s: %s" % (path, exc), **result)
            rc_before, errors_before = debug_errors(params["logrotate"], baseline_main, os.path.join(work, "before"),
                                                    dest_dir, config)
            rc_after, errors_after = debug_errors(params["logrotate"], new_main, os.path.join(work, "after"),
                                                  dest_dir, config)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        new = [line for line in errors_after if line not in errors_before]
        result["errors"] = new
        for line in errors_before:
            module.warn("the logrotate configuration already has this error without %s: %s" % (path, line))
        if new or (rc_after != 0 and rc_before == 0):
            module.fail_json(
                msg="logrotate_config: logrotate -d refuses %s with the rest of %s: %s. Nothing was written%s; "
                    "fix the settings that render it" % (
                        path, config, "; ".join(new) or "exit status %d" % rc_after,
                        " (the file there is as it was)" if before is not None else ""),
                **result)
    if result["changed"] and not module.check_mode:
        if content is None:
            os.unlink(path)
        else:
            write_text_atomically(path, content, 0o644)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            content=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            config=dict(type="path", default="/etc/logrotate.conf"),
            dest_dir=dict(type="path", default="/etc/logrotate.d"),
            logrotate=dict(type="path", default="/usr/sbin/logrotate"),
        ),
        supports_check_mode=True,
    )
    result = {"changed": False, "path": None, "errors": []}
    run(module, result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
