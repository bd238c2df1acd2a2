"""The periods a question names ("in November", "last spring", "spring 2024", "two weeks ago"),
as UTC intervals recall can favour. Small on purpose: a miss only loses a light boost.

Conventions (documented because each is a choice):

- A month or season without a year is its latest occurrence that has begun by ``now``;
  ``last <month|season>`` is the latest one that has ended.
- Seasons are the northern meteorological ones (spring = March to May, winter = December to
  February); ``winter 2024`` is January–February and December of 2024.
- Qualifiers ("end of April", "mid-October", "early 2024") keep the whole month or year: the
  boost is light, and a turn told on 2 May about "the end of April" should still count.
- "may" and "fall" are periods only after a cue word ("in May", "last fall") or before a year
  ("May 2024"): otherwise they are a verb.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

Window = tuple[datetime, datetime]  # [start, end), naive UTC like the stored times

MAX_WINDOWS = 4
MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sept", "sep"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}  # first month; 3 long
AMBIGUOUS = frozenset({"may", "fall", "mar", "jan", "jun", "sep", "oct", "dec", "nov", "feb", "apr", "aug"})
CUES = frozenset(
    "in of on since until till during early late mid end start beginning last this the by before after "
    "around".split()
)
NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
UNITS = frozenset({"day", "week", "month", "year"})
_TOKEN = re.compile(r"\d{4}-\d{2}-\d{2}|[a-z]+|\d+")
_YEAR = re.compile(r"(?:19|20)\d\d")


def _month(year: int, month: int, count: int = 1) -> Window:
    """``count`` months from ``month`` of ``year`` (months may run past December)."""
    first = year * 12 + month - 1
    last = first + count
    return datetime(first // 12, first % 12 + 1, 1), datetime(last // 12, last % 12 + 1, 1)


def _latest(now: datetime, month: int, span: int, *, ended: bool) -> Window:
    """The latest run of ``span`` months from ``month`` that has begun (or ended) by ``now``."""
    for year in (now.year, now.year - 1, now.year - 2):
        start, end = _month(year, month, span)
        if (end if ended else start) <= now:
            return start, end
    return _month(now.year - 2, month, span)


def _period(name: str, year: int | None, now: datetime, *, last: bool) -> list[Window]:
    month, span = (SEASONS[name], 3) if name in SEASONS else (MONTHS[name], 1)
    if year is None:
        return [_latest(now, month, span, ended=last)]
    if month == 12 and span == 3:  # winter of a year: its first two months and its December
        return [_month(year, 1, 2), _month(year, 12)]
    return [_month(year, month, span)]


def _relative(unit: str, back: int, now: datetime) -> Window:
    """The calendar ``unit`` (one of :data:`UNITS`) ``back`` units before the one of ``now``."""
    day = datetime(now.year, now.month, now.day)
    if unit == "day":
        start = day - timedelta(days=back)
        return start, start + timedelta(days=1)
    if unit == "week":  # weeks start on Monday
        start = day - timedelta(days=day.weekday() + 7 * back)
        return start, start + timedelta(days=7)
    if unit == "month":
        return _month(now.year, now.month - back)
    return datetime(now.year - back, 1, 1), datetime(now.year - back + 1, 1, 1)


def windows(question: str, now: datetime) -> list[Window]:
    """The periods ``question`` names, at most :data:`MAX_WINDOWS`, in the order named."""
    now = now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now
    words = _TOKEN.findall(question.lower()[:2_000])
    found: list[Window] = []
    used_years: set[int] = set()
    for i, word in enumerate(words):
        before = words[i - 1] if i else ""
        after = words[i + 1] if i + 1 < len(words) else ""
        year = int(after) if _YEAR.fullmatch(after) else None
        if len(word) == 10 and word[4] == "-":  # an ISO date
            try:
                start = datetime.fromisoformat(word)
            except ValueError:
                continue
            found.append((start, start + timedelta(days=1)))
        elif word in MONTHS or word in SEASONS:
            if word in AMBIGUOUS and before not in CUES and year is None:
                continue
            found += _period(word, year, now, last=before == "last")
            if year is not None:
                used_years.add(year)
        elif word == "yesterday":
            found.append(_relative("day", 1, now))
        elif word in ("week", "month", "year") and before in ("last", "this"):
            found.append(_relative(word, 1 if before == "last" else 0, now))
        elif after == "ago" and word.rstrip("s") in UNITS and (before.isdigit() or before in NUMBERS):
            back = int(before) if before.isdigit() else NUMBERS[before]
            found.append(_relative(word.rstrip("s"), min(back, 100), now))
    for word in words:
        if _YEAR.fullmatch(word) and int(word) not in used_years:
            year = int(word)
            found.append((datetime(year, 1, 1), datetime(year + 1, 1, 1)))
    return list(dict.fromkeys(found))[:MAX_WINDOWS]
