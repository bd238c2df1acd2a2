"""The rules of scheduled time: what the model may send, and when a job is next due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.schedule import (
    Rule,
    ScheduleError,
    build_rule,
    describe,
    first_run,
    format_time,
    next_after,
    parse_cron,
    parse_interval,
    parse_time,
    zone,
)

BERLIN = zone("Europe/Berlin")
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def test_a_naive_time_is_read_in_the_users_zone_and_an_aware_one_kept() -> None:
    assert parse_time("2026-12-24T09:00", BERLIN, NOW) == utc(2026, 12, 24, 8, 0)
    assert parse_time("2027-07-01 09:00", BERLIN, NOW) == utc(2027, 7, 1, 7, 0)  # summer time
    assert parse_time("2026-12-24T09:00-05:00", BERLIN, NOW) == utc(2026, 12, 24, 14, 0)
    assert parse_time("2026-12-24T09:00Z", BERLIN, NOW) == utc(2026, 12, 24, 9, 0)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("tomorrow at 9", "is not an ISO 8601 date and time"),
        ("2026-12-24", "has no time of day"),
        ("2026-11-30T09:00", "is in the past (it is now Tue 1 Dec 2026 11:00 CET)"),
    ],
)
def test_a_bad_time_gets_an_error_the_model_can_act_on(text: str, says: str) -> None:
    with pytest.raises(ScheduleError, match=rf"^'{text}' {says.replace('(', '.').replace(')', '.')}"):
        parse_time(text, BERLIN, NOW)


def test_cron_expressions_are_checked_and_explained() -> None:
    assert parse_cron(" 0  9 * * 1-5 ") == "0 9 * * 1-5"
    bad_minute = r"^'61 \* \* \* \*' is not a valid cron expression: .*out of range"
    with pytest.raises(ScheduleError, match=bad_minute):
        parse_cron("61 * * * *")
    with pytest.raises(ScheduleError, match="needs five fields"):
        parse_cron("0 0 9 * * *")  # croniter would take six (seconds); the tool says five
    with pytest.raises(ScheduleError, match="not a valid cron expression"):
        parse_cron("0 9 * * funday")


def test_intervals_are_seconds_or_iso_8601_durations() -> None:
    assert parse_interval(3600) == 3600
    assert parse_interval("900") == 900
    assert parse_interval("PT30M") == 1800
    assert parse_interval("P1D") == 86_400
    assert parse_interval("P1W") == 7 * 86_400
    for bad in ("soon", "0", -5, True):
        with pytest.raises(ScheduleError):
            parse_interval(bad)


def test_limits_refuse_too_frequent_jobs() -> None:
    def rule(at: str | None = None, cron: str | None = None, every: str | None = None) -> Rule:
        return build_rule(at=at, cron=cron, every=every, tz=BERLIN, now=NOW, min_interval_s=300)

    with pytest.raises(
        ScheduleError, match="an interval of 1 min is too short; the shortest allowed is 5 min"
    ):
        rule(every="PT1M")
    with pytest.raises(
        ScheduleError, match=r"'\*/2 \* \* \* \*' fires every 2 min; the shortest allowed is 5"
    ):
        rule(cron="*/2 * * * *")
    with pytest.raises(ScheduleError, match="either 'cron', or 'at'"):
        rule(at="2026-12-24T09:00", cron="0 9 * * *")
    with pytest.raises(ScheduleError, match="say when"):
        rule()


def test_an_interval_keeps_its_phase_from_its_first_run() -> None:
    rule = build_rule(at="2026-12-01T12:00", cron=None, every="PT2H", tz=BERLIN, now=NOW, min_interval_s=300)
    assert rule == Rule("interval", interval_s=7200, start_at=utc(2026, 12, 1, 11, 0))
    assert first_run(rule, BERLIN, NOW) == utc(2026, 12, 1, 11, 0)
    assert next_after(rule, BERLIN, utc(2026, 12, 1, 11, 0)) == utc(2026, 12, 1, 13, 0)
    assert next_after(rule, BERLIN, utc(2026, 12, 1, 16, 30)) == utc(2026, 12, 1, 17, 0)  # skips 15:00
    plain = build_rule(at=None, cron=None, every=600, tz=BERLIN, now=NOW, min_interval_s=300)
    assert plain.start_at == NOW + timedelta(minutes=10) and describe(plain) == "every 10 min"


def test_a_one_shot_has_no_second_run() -> None:
    rule = build_rule(at="2026-12-24T09:00", cron=None, every=None, tz=BERLIN, now=NOW, min_interval_s=300)
    assert first_run(rule, BERLIN, NOW) == utc(2026, 12, 24, 8, 0)
    assert next_after(rule, BERLIN, utc(2026, 12, 24, 8, 0)) is None


def _runs(expr: str, start: datetime, count: int) -> list[datetime]:
    rule, out, moment = Rule("cron", cron=expr), [], start
    for _ in range(count):
        following = next_after(rule, BERLIN, moment)
        assert following is not None
        out.append(following)
        moment = following
    return out


def test_cron_keeps_the_wall_clock_across_both_dst_changes_in_berlin() -> None:
    # 2027: summer time starts Sun 28 March at 02:00 CET, ends Sun 31 October at 03:00 CEST.
    assert _runs("0 9 * * *", utc(2027, 3, 26, 12, 0), 3) == [
        utc(2027, 3, 27, 8, 0),  # 09:00 CET
        utc(2027, 3, 28, 7, 0),  # 09:00 CEST
        utc(2027, 3, 29, 7, 0),
    ]
    assert _runs("0 9 * * *", utc(2027, 10, 29, 12, 0), 3) == [
        utc(2027, 10, 30, 7, 0),  # 09:00 CEST
        utc(2027, 10, 31, 8, 0),  # 09:00 CET
        utc(2027, 11, 1, 8, 0),
    ]


def test_a_skipped_wall_time_fires_after_the_gap_and_a_repeated_one_fires_once() -> None:
    assert _runs("30 2 * * *", utc(2027, 3, 27, 12, 0), 2) == [
        utc(2027, 3, 28, 1, 0),  # 02:30 does not exist: 03:00 CEST
        utc(2027, 3, 29, 0, 30),  # 02:30 CEST
    ]
    assert _runs("30 2 * * *", utc(2027, 10, 30, 12, 0), 2) == [
        utc(2027, 10, 31, 0, 30),  # 02:30 CEST, the first of two 02:30s
        utc(2027, 11, 1, 1, 30),  # not 01:30 UTC (the second 02:30, CET) of the same day
    ]
    # An expression without a fixed hour keeps its rhythm through the repeated hour.
    quarter = _runs("*/15 * * * *", utc(2027, 10, 31, 0, 50), 6)
    assert quarter == [utc(2027, 10, 31, 0, 45) + timedelta(minutes=15 * i) for i in range(1, 7)]


def test_zones_and_times_read_as_the_user_sees_them() -> None:
    assert format_time(utc(2026, 12, 24, 8, 0), BERLIN) == "Thu 24 Dec 2026 09:00 CET"
    assert describe(Rule("cron", cron="0 9 * * 1-5")) == "cron 0 9 * * 1-5"
    for bad in ("Mars/Olympus", "", "../etc/passwd", "/etc/localtime"):
        with pytest.raises(ScheduleError, match="is not a time zone; use an IANA name"):
            zone(bad)
