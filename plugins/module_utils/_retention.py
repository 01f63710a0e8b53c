# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Grandfather-father-son retention, as restic and borgmatic define it: pure
functions over (id, created_at, verified) with the clock passed in, so tests pin it.

keep_last N keeps the N newest. keep_hourly/daily/weekly/monthly/yearly N keeps the
newest backup of each of the N most recent hours/days/ISO weeks/months/years that
have a backup, in the given time zone (so a DST change or a month boundary falls
where an operator expects). max_age deletes anything older, whatever keeps it. The
newest verified backup is always kept.
"""

import datetime
import re

from ansible_collections.botops.runbook.plugins.module_utils._run import ModuleError

PERIODS = (
    # The offset keeps the hour repeated when DST ends (02:00 CEST, then 02:00 CET) two hours.
    ("hourly", lambda t: t.strftime("%Y-%m-%d %H%z")),
    ("daily", lambda t: t.strftime("%Y-%m-%d")),
    ("weekly", lambda t: "%04d-W%02d" % t.isocalendar()[:2]),
    ("monthly", lambda t: t.strftime("%Y-%m")),
    ("yearly", lambda t: t.strftime("%Y")),
)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class RetentionError(ModuleError):
    """A policy that cannot be applied, in words."""


def parse_duration(value):
    """Seconds from an int or a string such as '90', '36h', '30d', '2w'; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    match = re.match(r"^\s*(\d+)\s*([smhdw]?)\s*$", str(value))
    if not match:
        raise RetentionError("cannot read duration %r; write seconds or a number with s, m, h, d or w (e.g. 30d)"
                             % value)
    return int(match.group(1)) * UNITS[match.group(2) or "s"]


def check_policy(policy):
    """Refuse a policy that would keep nothing (the classic `find -mtime +30 -delete`)."""
    counts = [policy.get("keep_" + name) or 0 for name in ("last",) + tuple(p for p, dummy in PERIODS)]
    if any(c < 0 for c in counts):
        raise RetentionError("keep_* values must be 0 or more")
    if not any(counts) and policy.get("max_age") is None:
        raise RetentionError("the retention policy keeps nothing: set keep_last, a keep_hourly..keep_yearly "
                             "count, or max_age")


def select(backups, now, policy, tz=datetime.timezone.utc):
    """Decide what to keep. ``backups``: dicts with id, created_at (aware datetime),
    verified (bool). Returns {id: [reasons kept]}; ids not in it are to be deleted."""
    check_policy(policy)
    ordered = sorted(backups, key=lambda b: b["created_at"], reverse=True)
    keep = {}

    def mark(backup, reason):
        keep.setdefault(backup["id"], []).append(reason)

    for index, backup in enumerate(ordered):
        if index < (policy.get("keep_last") or 0):
            mark(backup, "keep_last")
    any_rule = any(policy.get("keep_" + name) for name, dummy in PERIODS) or policy.get("keep_last")
    for name, bucket in PERIODS:
        remaining = policy.get("keep_" + name) or 0
        last_bucket = None
        for backup in ordered:
            if remaining <= 0:
                break
            key = bucket(backup["created_at"].astimezone(tz))
            if key != last_bucket:
                mark(backup, "keep_%s (%s)" % (name, key))
                remaining -= 1
                last_bucket = key

    max_age = policy.get("max_age")
    if max_age is not None:
        for backup in ordered:
            age = (now - backup["created_at"]).total_seconds()
            if age > max_age:
                keep.pop(backup["id"], None)
            elif not any_rule:
                mark(backup, "within max_age")

    verified = [b for b in ordered if b.get("verified")]
    if verified:
        mark(verified[0], "newest verified backup (never deleted)")
    return keep
