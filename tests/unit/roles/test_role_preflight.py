# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input to the monitoring and logrotate roles is refused before any task
changes anything, with a message that names the setting and what to do."""

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def run_role(tmp_path, role, variables):
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                         "roles": [{"role": "botops.runbook.%s" % role}]}]))
    done = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook),
         "-e", "ansible_python_interpreter=%s" % shutil.which("python"), "-e", json.dumps(variables)],
        capture_output=True, text=True, timeout=300, check=False)
    recap = re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)", done.stdout)
    return done.returncode, done.stdout, int(recap.group(1)) if recap else None


BOT = {"name": "samplebot"}

CASES = [
    ("logrotate", {"logrotate_bots": [dict(BOT, paths=["/etc/passwd"])]}, "are not under /srv/samplebot/ or /var/log/samplebot/"),
    ("logrotate", {"logrotate_bots": [dict(BOT, paths=["/srv/samplebot/../../etc/*.log"])]}, "(no .., //"),
    ("logrotate", {"logrotate_bots": [dict(BOT, paths=["/srv/samplebot/shared/data/*"])]}, "names ending in .log"),
    ("logrotate", {"logrotate_bots": [dict(BOT, paths=["/srv/samplebot/shared/logs/bot.log\n}\n/etc/passwd {"])]},
     "names ending in .log"),
    # Directive injection through every value that reaches the file.
    ("logrotate", {"logrotate_bots": [dict(BOT, copytruncate=False, postrotate_signal="HUP",
                                           unit="inj.service\n    endscript\n}\n/etc/passwd {\n    rotate 0")]},
     "is not a systemd service name"),
    ("logrotate", {"logrotate_bots": [dict(BOT, unit="x.service\n")]}, "is not a systemd service name"),
    ("logrotate", {"logrotate_bots": [dict(BOT, copytruncate=False, create={"owner": "bot\n    postrotate"})]},
     "is not {mode: 0640"),
    ("logrotate", {"logrotate_bots": [dict(BOT, root="/", paths=["/etc/shadow.log"])]}, "root \"/\" is not an absolute path"),
    ("logrotate", {"logrotate_bots": [dict(BOT, su={"user": "root", "group": "root"})]}, "of a user other than root"),
    ("logrotate", {"logrotate_bots": [dict(BOT, postrotate_signal="HUP; rm -rf /", copytruncate=False)]},
     "is not a signal name"),
    ("logrotate", {"logrotate_bots": [dict(BOT, paths=["/var/log/samplebot2/x.log"])]}, "are not under"),
    ("logrotate", {"logrotate_bots": [dict(BOT, maxsize="10Q")]}, 'maxsize "10Q" is not a size'),
    ("logrotate", {"logrotate_bots": [dict(BOT, frequency="fortnightly")]}, 'frequency "fortnightly" is not one of'),
    ("logrotate", {"logrotate_bots": [dict(BOT, rotate="many")]}, 'rotate "many" is not a count'),
    ("logrotate", {"logrotate_bots": [dict(BOT, postrotate_signal="HUP")]}, "copytruncate and postrotate_signal"),
    ("monitoring", {"monitoring_bot_memory_warning_mb": "200MB"}, "monitoring_bot_memory_warning_mb"),
    ("monitoring", {"monitoring_alert_overrides": {"BotopsBotDwn": {"for": "1m"}}}, "unknown alert(s) BotopsBotDwn"),
    ("monitoring", {"monitoring_bots": [{"name": "x", "databases": [{"engine": "sqlite"}]}]}, "every sqlite database a path"),
]


@pytest.mark.parametrize("role, variables, message", CASES, ids=[c[2][:40] for c in CASES])
def test_bad_input_is_refused_before_any_change(tmp_path, role, variables, message):
    rc, output, changed = run_role(tmp_path, role, variables)
    assert rc != 0, output[-2000:]
    flat = " ".join(output.split())
    assert message in flat, output[-3000:]
    assert changed == 0, output[-2000:]
