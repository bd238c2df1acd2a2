"""The daily token limit: who is limited, by how much, and the check before a turn's LLM call.

The rules, owned here for every frontend (Telegram, `omni chat`, the gateway):

- Only a turn with a user id is limited; `omni chat` and the gateway's anonymous sessions are not.
- A user's own limit, set by an admin with /limit, wins: a number of tokens, or 0 for none.
- Without one, ``OMNI_USAGE_DAILY_TOKENS`` applies (0: none), except to admins, who are exempt
  unless an admin gives them a limit of their own.
- A day is the UTC day: what counts is every LLM call recorded for the user since 00:00 UTC
  (answers, tool rounds, and the summaries and facts written for them in the background), and
  the limit resets at the next 00:00 UTC.
- The check runs before a turn's first LLM call (and before recall, which may call an embedding
  model). A turn that starts under the limit is finished, so one turn's calls can overshoot it.

The check is one statement: the user's own limit (a primary-key lookup) and the sum of their
tokens since midnight (a range of the (user_id, created_at) index), tens of microseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agent.errors import DailyLimitReached
from agent.types import Turn
from memory.usage import UsageLog


@dataclass(frozen=True, slots=True)
class Allowance:
    """A limited user's day: their limit, what they used of it, when it resets."""

    limit: int  # tokens per UTC day
    used: int  # tokens since 00:00 UTC
    resets_at: datetime  # the next 00:00 UTC
    own: bool  # set for this user by an admin (else OMNI_USAGE_DAILY_TOKENS)

    @property
    def reached(self) -> bool:
        return self.used >= self.limit

    @property
    def left(self) -> int:
        return max(self.limit - self.used, 0)


def effective_limit(own: int | None, default: int, *, is_admin: bool) -> int | None:
    """Tokens a day for a user with ``own`` limit (None: none of their own); None: no limit."""
    if own is not None:
        return own or None
    if is_admin:
        return None
    return default or None


def day_start(now: datetime) -> datetime:
    """00:00 UTC of ``now``'s UTC day."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def until(moment: datetime, now: datetime) -> str:
    """How long from ``now`` to ``moment``, in words: "5 h 12 min", "40 min", "less than a minute"."""
    minutes = int((moment - now).total_seconds() // 60)
    hours, minutes = divmod(max(minutes, 0), 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else "less than a minute"


def reached_message(allowance: Allowance, now: datetime) -> str:
    return (
        f"You've used your {allowance.limit:,} tokens for today; the limit resets at 00:00 UTC "
        f"(in {until(allowance.resets_at, now)})."
    )


class DailyLimit:
    """The limit of :mod:`agent.limits` on a store's usage log, with ``default`` tokens a day."""

    def __init__(self, usage: UsageLog, default: int, clock: Callable[[], datetime]) -> None:
        self._usage = usage
        self.default = default
        self._clock = clock

    async def allowance(self, user_id: int, *, is_admin: bool) -> Allowance | None:
        """The user's limit and today's use of it; None when no limit applies to them."""
        start = day_start(self._clock())
        use = await self._usage.daily_use(user_id, since=start)
        limit = effective_limit(use.own_limit, self.default, is_admin=is_admin)
        if limit is None:
            return None
        return Allowance(limit, use.used, start + timedelta(days=1), own=use.own_limit is not None)

    async def check(self, turn: Turn) -> None:
        """Raise :class:`DailyLimitReached` if the turn's user has used up today's tokens."""
        if turn.user_id is None:
            return
        allowance = await self.allowance(turn.user_id, is_admin=turn.is_admin)
        if allowance is not None and allowance.reached:
            raise DailyLimitReached(
                f"user {turn.user_id} used {allowance.used} of {allowance.limit} tokens today",
                user_message=reached_message(allowance, self._clock()),
            )
