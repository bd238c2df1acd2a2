"""The time skill: current time in a timezone, date arithmetic."""

# Annotations are evaluated once, here: the SDK reads a tool's hints several times at start-up
# and string annotations (``from __future__ import annotations``) would be re-parsed each time.

from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field

from skills._tool import SkillError, prompt, tool

TzArg = Annotated[str, Field(description="IANA timezone name, e.g. 'Europe/Berlin' or 'UTC'")]


class Now(BaseModel):
    timezone: str
    iso: str
    date: str
    time: str
    weekday: str
    utc_offset: str


class Shifted(BaseModel):
    result: str
    weekday: str


class Between(BaseModel):
    days: int


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SkillError(f"unknown timezone {name!r}; use an IANA name like 'Europe/Berlin'") from None


def _parse(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise SkillError(
            f"{value!r} is not an ISO date or datetime (e.g. 2025-03-01 or 2025-03-01T14:30)"
        ) from None


@tool(read_only=True)
async def current_time(timezone: TzArg = "UTC") -> Now:
    """The current date and time in a timezone."""
    now = datetime.now(UTC).astimezone(_zone(timezone))
    offset = now.strftime("%z")
    return Now(
        timezone=timezone,
        iso=now.isoformat(timespec="seconds"),
        date=now.date().isoformat(),
        time=now.strftime("%H:%M:%S"),
        weekday=now.strftime("%A"),
        utc_offset=f"{offset[:3]}:{offset[3:]}",
    )


@tool(read_only=True, idempotent=True)
async def add_to_date(
    start: Annotated[str, Field(description="ISO date or datetime")],
    days: int = 0,
    hours: int = 0,
    minutes: int = 0,
    weeks: int = 0,
) -> Shifted:
    """Add (or, with negative numbers, subtract) a duration to a date or datetime."""
    moment = _parse(start)
    try:
        shifted = moment + timedelta(days=days, hours=hours, minutes=minutes, weeks=weeks)
    except OverflowError:
        raise SkillError("the resulting date is out of range") from None
    is_date_only = len(start.strip()) == 10 and not (hours or minutes)
    text = shifted.date().isoformat() if is_date_only else shifted.isoformat()
    return Shifted(result=text, weekday=shifted.strftime("%A"))


@tool(read_only=True, idempotent=True)
async def days_between(
    start: Annotated[str, Field(description="ISO date")],
    end: Annotated[str, Field(description="ISO date")],
) -> Between:
    """Count calendar days from ``start`` to ``end`` (negative if ``end`` is earlier)."""
    first: date = _parse(start).date()
    second: date = _parse(end).date()
    return Between(days=(second - first).days)


@prompt(title="What time is it there?")
async def time_in(timezone: str = "UTC") -> str:
    """Ask for the current time in a timezone."""
    return f"What is the current date and time in {timezone}? Use the current_time tool."
