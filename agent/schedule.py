"""The rules of scheduled jobs' time: parse what the model gives, find the next due time.

Pure functions, no I/O. The model turns the user's words into ISO 8601 times, cron strings and
intervals; everything it gets wrong is answered with a :class:`ScheduleError` whose text says
what to send instead. Times are read in the user's zone and stored in UTC.

Daylight saving time: cron expressions are evaluated by croniter on aware datetimes of the
job's zone, so "0 9 * * *" stays 09:00 local across the change (08:00 UTC in winter in Berlin,
07:00 in summer). A wall time the spring change skips fires at the first valid minute after it;
one the autumn change repeats fires once (croniter alone would fire an expression with a fixed
hour in both copies of the repeated hour, which is how cron without this rule double-fires).
An interval is a fixed number of seconds, so it keeps its rhythm in UTC, not on the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import TypeAdapter, ValidationError

ScheduleKind = Literal["once", "cron", "interval"]

_DURATION = TypeAdapter(timedelta)
_CRON_FIELDS = "minute hour day-of-month month day-of-week"
_GAP_SAMPLES = 60  # consecutive cron occurrences checked against the minimum interval


class ScheduleError(ValueError):
    """A time, cron expression, interval or zone the model should correct; ``str()`` says how."""


@dataclass(frozen=True, slots=True)
class Rule:
    """When a job fires. ``start_at`` (UTC): a one-shot's time, or an interval's first run."""

    schedule: ScheduleKind
    cron: str | None = None
    interval_s: int | None = None
    start_at: datetime | None = None


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (e.g. Europe/Berlin)."""
    try:
        if not name or name != name.strip() or ".." in name or name.startswith("/"):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"{name!r} is not a time zone; use an IANA name such as Europe/Berlin, America/New_York or UTC"
        ) from None


def parse_time(text: str, tz: ZoneInfo, now: datetime) -> datetime:
    """An ISO 8601 date and time in the future, as UTC; without an offset it is read in ``tz``."""
    raw = text.strip()
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ScheduleError(
            f"{text!r} is not an ISO 8601 date and time; send e.g. 2026-12-24T09:00 "
            "(read in the user's time zone) or 2026-12-24T09:00+01:00"
        ) from None
    if len(raw) <= 10:  # a date alone: which time of that day is for the model to say
        raise ScheduleError(f"{text!r} has no time of day; send e.g. {raw}T09:00")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    moment = moment.astimezone(UTC)
    if moment <= now:
        raise ScheduleError(f"{text!r} is in the past (it is now {format_time(now, tz)}); send a future time")
    return moment


def parse_cron(expr: str) -> str:
    """A valid five-field cron expression, its fields single-spaced."""
    fields = expr.split()
    example = "e.g. '0 9 * * 1-5' for 09:00 on weekdays"
    if len(fields) != 5:
        raise ScheduleError(
            f"{expr!r} is not a valid cron expression: it needs five fields ({_CRON_FIELDS}), {example}"
        )
    normal = " ".join(fields)
    try:
        croniter(normal)
    except (ValueError, KeyError) as exc:  # croniter's errors are ValueErrors; KeyError: a bad name
        raise ScheduleError(f"{expr!r} is not a valid cron expression: {exc}; {example}") from None
    return normal


def parse_interval(value: str | int | float) -> int:
    """An interval in whole seconds: a number of seconds, or an ISO 8601 duration (PT30M, P1D)."""
    if isinstance(value, bool):
        raise ScheduleError("an interval is a number of seconds or an ISO 8601 duration such as PT30M")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int | float):
        seconds = int(value)
    else:
        try:
            seconds = int(_DURATION.validate_python(value.strip()).total_seconds())
        except ValidationError:
            raise ScheduleError(
                f"{value!r} is not an interval; send seconds (3600) or an ISO 8601 duration "
                "(PT30M, PT2H, P1D, P1W)"
            ) from None
    if seconds <= 0:
        raise ScheduleError(f"{value!r} is not a positive interval")
    return seconds


def build_rule(
    *,
    at: str | None,
    cron: str | None,
    every: str | int | float | None,
    tz: ZoneInfo,
    now: datetime,
    min_interval_s: int,
) -> Rule:
    """The rule for a job from the tool's arguments: ``at`` alone (once), ``cron`` alone, or
    ``every`` (with ``at`` as its first run; else the first run is one interval from now)."""
    if cron is not None and (at is not None or every is not None):
        raise ScheduleError("give either 'cron', or 'at' and/or 'every', not both")
    if cron is not None:
        expr = parse_cron(cron)
        gap = _smallest_gap(expr, tz, now)
        if gap is not None and gap < min_interval_s:
            raise ScheduleError(
                f"{expr!r} fires every {duration(gap)}; the shortest allowed is {duration(min_interval_s)}"
            )
        return Rule("cron", cron=expr)
    if every is not None:
        seconds = parse_interval(every)
        if seconds < min_interval_s:
            raise ScheduleError(
                f"an interval of {duration(seconds)} is too short; the shortest allowed is "
                f"{duration(min_interval_s)}"
            )
        start = parse_time(at, tz, now) if at is not None else now + timedelta(seconds=seconds)
        return Rule("interval", interval_s=seconds, start_at=start)
    if at is not None:
        return Rule("once", start_at=parse_time(at, tz, now))
    raise ScheduleError("say when: 'at' (an ISO 8601 time), 'cron' (five fields) or 'every' (an interval)")


def first_run(rule: Rule, tz: ZoneInfo, now: datetime) -> datetime | None:
    """The first due time of a new job."""
    if rule.schedule == "cron":
        return next_after(rule, tz, now)
    return rule.start_at


def next_after(rule: Rule, tz: ZoneInfo, after: datetime) -> datetime | None:
    """The rule's first due time strictly after ``after`` (UTC); None if there is none."""
    after = after.astimezone(UTC)
    if rule.schedule == "once":
        return rule.start_at if rule.start_at is not None and rule.start_at > after else None
    if rule.schedule == "interval":
        if rule.start_at is None or not rule.interval_s:
            return None
        if rule.start_at > after:
            return rule.start_at
        periods = (after - rule.start_at) // timedelta(seconds=rule.interval_s) + 1
        return rule.start_at + periods * timedelta(seconds=rule.interval_s)
    if rule.cron is None:
        return None
    return _cron_next(rule.cron, tz, after)


def _cron_next(expr: str, tz: ZoneInfo, after: datetime) -> datetime | None:
    occurrences = croniter(expr, after.astimezone(tz))
    fixed_hour = expr.split()[1] != "*" and "/" not in expr.split()[1]
    for _ in range(4):  # a repeated wall time is skipped at most once in a row
        try:
            candidate: datetime = occurrences.get_next(datetime)
        except (ValueError, KeyError):  # no occurrence within croniter's search (e.g. 30 Feb)
            return None
        local = candidate.astimezone(tz)
        repeated = local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()
        if not (fixed_hour and repeated):
            return candidate.astimezone(UTC)
    return None


def _smallest_gap(expr: str, tz: ZoneInfo, now: datetime) -> int | None:
    """The smallest gap in seconds between the expression's next occurrences."""
    times: list[datetime] = []
    moment: datetime | None = now
    while moment is not None and len(times) < _GAP_SAMPLES:
        moment = _cron_next(expr, tz, moment)
        if moment is not None:
            times.append(moment)
    gaps = [int((b - a).total_seconds()) for a, b in zip(times, times[1:], strict=False)]
    return min(gaps) if gaps else None


def format_time(moment: datetime, tz: ZoneInfo) -> str:
    """A moment as the user reads it: 'Thu 24 Dec 2026 09:00 CET'."""
    local = moment.astimezone(tz)
    return f"{local:%a} {local.day} {local:%b %Y %H:%M} {local.tzname() or tz.key}"


def duration(seconds: int) -> str:
    """'90 s', '30 min', '2 h 30 min', '1 day', '2 days 3 h'."""
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days} day" + ("s" if days > 1 else ""))
    if hours:
        parts.append(f"{hours} h")
    if minutes:
        parts.append(f"{minutes} min")
    if secs or not parts:
        parts.append(f"{secs} s")
    return " ".join(parts)


def describe(rule: Rule) -> str:
    """How often: 'once', 'cron 0 9 * * 1-5', 'every 30 min'."""
    if rule.schedule == "cron":
        return f"cron {rule.cron}"
    if rule.schedule == "interval":
        return f"every {duration(rule.interval_s or 0)}"
    return "once"
