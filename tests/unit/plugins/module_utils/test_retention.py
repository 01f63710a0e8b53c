# -*- coding: utf-8 -*-
# Copyright: botops.runbook contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GFS retention rules with fixed clocks."""

import datetime

import pytest
from zoneinfo import ZoneInfo

from ansible_collections.botops.runbook.plugins.module_utils._retention import (
    RetentionError,
    parse_duration,
    select,
)

UTC = datetime.timezone.utc


def at(text, tz=UTC):
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=tz)


def backups(*times, verified=True):
    return [{"id": t, "created_at": at(t), "verified": verified} for t in times]


def kept(result):
    return sorted(result)


def test_keep_last():
    sets = backups("2026-11-20 03:00", "2026-11-21 03:00", "2026-11-22 03:00")
    assert kept(select(sets, at("2026-11-22 12:00"), {"keep_last": 2})) == ["2026-11-21 03:00", "2026-11-22 03:00"]


def test_several_backups_in_one_hour_keep_the_newest_of_that_hour():
    sets = backups("2026-11-22 10:05", "2026-11-22 10:35", "2026-11-22 10:55", "2026-11-22 11:10")
    result = select(sets, at("2026-11-22 12:00"), {"keep_hourly": 2})
    assert kept(result) == ["2026-11-22 10:55", "2026-11-22 11:10"]
    assert result["2026-11-22 10:55"] == ["keep_hourly (2026-11-22 10+0000)"]


def test_daily_across_a_month_boundary_then_monthly_and_yearly():
    sets = backups("2025-12-31 23:00", "2026-01-31 02:00", "2026-01-31 23:30", "2026-02-01 00:30", "2026-02-01 03:00")
    result = select(sets, at("2026-02-01 12:00"), {"keep_daily": 2, "keep_monthly": 3, "keep_yearly": 2})
    assert "keep_daily (2026-02-01)" in result["2026-02-01 03:00"]
    assert "keep_daily (2026-01-31)" in result["2026-01-31 23:30"]
    assert "keep_monthly (2026-01)" in result["2026-01-31 23:30"]
    assert "keep_monthly (2025-12)" in result["2025-12-31 23:00"]
    assert "keep_yearly (2025)" in result["2025-12-31 23:00"]
    assert "2026-01-31 02:00" not in result and "2026-02-01 00:30" not in result


def test_weekly_uses_iso_weeks():
    # 2026-01-04 is a Sunday (ISO week 2026-W01), 2026-01-05 a Monday (W02).
    sets = backups("2026-01-03 12:00", "2026-01-04 12:00", "2026-01-05 12:00")
    result = select(sets, at("2026-01-06 00:00"), {"keep_weekly": 2})
    assert kept(result) == ["2026-01-04 12:00", "2026-01-05 12:00"]


def test_daily_buckets_follow_the_local_time_zone_across_dst():
    berlin = ZoneInfo("Europe/Berlin")
    # The night DST ends (2026-10-25, 03:00 CEST -> 02:00 CET): 00:30 UTC and 01:30 UTC
    # are both on the 25th in Berlin; 22:30 UTC on the 24th is 00:30 CEST on the 25th.
    sets = backups("2026-10-24 21:30", "2026-10-24 22:30", "2026-10-25 00:30", "2026-10-25 01:30")
    result = select(sets, at("2026-10-25 12:00"), {"keep_daily": 2}, tz=berlin)
    assert kept(result) == ["2026-10-24 21:30", "2026-10-25 01:30"]
    hourly = select(sets, at("2026-10-25 12:00"), {"keep_hourly": 4}, tz=berlin)
    assert len(hourly) == 4, "the repeated 02:00 hour (CEST, then CET) counts as two hours"


def test_max_age_deletes_older_even_when_a_rule_would_keep():
    sets = backups("2026-10-01 03:00", "2026-11-20 03:00", "2026-11-21 03:00")
    result = select(sets, at("2026-11-22 03:00"), {"keep_monthly": 12, "max_age": parse_duration("30d")})
    assert kept(result) == ["2026-11-21 03:00"]


def test_max_age_alone_keeps_everything_younger():
    sets = backups("2026-10-01 03:00", "2026-11-20 03:00", "2026-11-21 03:00")
    result = select(sets, at("2026-11-22 03:00"), {"max_age": parse_duration("7d")})
    assert kept(result) == ["2026-11-20 03:00", "2026-11-21 03:00"]


def test_the_newest_verified_backup_is_never_deleted():
    sets = backups("2026-09-01 03:00") + backups("2026-11-21 03:00", "2026-11-22 03:00", verified=False)
    result = select(sets, at("2026-11-22 04:00"), {"keep_last": 1, "max_age": parse_duration("7d")})
    assert result["2026-11-22 03:00"] == ["keep_last"], "the unverified newest is kept by its rule"
    assert result["2026-09-01 03:00"] == ["newest verified backup (never deleted)"]
    assert "2026-11-21 03:00" not in result


@pytest.mark.parametrize("policy", [{}, {"keep_last": 0, "keep_daily": 0}])
def test_a_policy_that_keeps_nothing_is_refused(policy):
    with pytest.raises(RetentionError, match="keeps nothing"):
        select(backups("2026-11-22 03:00"), at("2026-11-22 04:00"), policy)


def test_durations():
    assert parse_duration("90") == 90 and parse_duration(60) == 60 and parse_duration("36h") == 129600
    assert parse_duration("2w") == 1209600 and parse_duration(None) is None
    with pytest.raises(RetentionError, match="cannot read duration"):
        parse_duration("a month")
