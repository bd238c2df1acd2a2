"""Per-call LLM usage: tokens, cost, latency; its sums over a period, per user and for everyone.

Moments are compared in UTC. They are bound as aware datetimes: SQLite stores the UTC wall time
(SQLAlchemy drops the offset), and PostgreSQL's driver would read a naive one as local time.

One user's sums run in place (a range of the (user_id, created_at) index: tens of microseconds
even for a heavy user's day); everyone's run off the event loop (``Database.read``), as a month
of everyone's rows takes milliseconds to add up.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Select, func, insert, select

from memory.db import Database
from memory.models import Usage, User
from memory.types import DailyUse, UsageRecord, UsageTotals, UserUsage


def utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (a naive one is taken to be UTC already)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def usage_values(usage: UsageRecord) -> dict[str, Any]:
    values: dict[str, Any] = dict(
        user_id=usage.user_id,
        session_id=usage.session_id,
        model=usage.model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost=usage.cost,
        latency_ms=usage.latency_ms,
    )
    if usage.created_at is not None:
        values["created_at"] = utc(usage.created_at)
    return values


_TOKENS = Usage.prompt_tokens + Usage.completion_tokens


def _sums() -> Select[int, int, int, float]:
    """Calls, tokens in, tokens out, cost: zeros, not NULLs, over no rows."""
    return select(
        func.count(),
        func.coalesce(func.sum(Usage.prompt_tokens), 0),
        func.coalesce(func.sum(Usage.completion_tokens), 0),
        func.coalesce(func.sum(Usage.cost), 0.0),
    )


def _totals(row: Any) -> UsageTotals:
    # int()/float(): PostgreSQL's sum of integers is a bigint, of floats a double; keep types plain.
    calls, prompt, completion, cost = row
    return UsageTotals(int(calls), int(prompt), int(completion), float(cost))


class UsageLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, usage: UsageRecord) -> None:
        async with self._db.session() as db:
            await db.execute(insert(Usage).values(**usage_values(usage)))

    async def totals(self, user_id: int | None = None, since: datetime | None = None) -> UsageTotals:
        """Sum over all calls, or one user's, optionally since a moment (UTC if naive)."""
        query = _sums()
        if since is not None:
            query = query.where(Usage.created_at >= utc(since))
        if user_id is None:
            return await self._db.read(lambda conn: _totals(conn.execute(query).one()))
        query = query.where(Usage.user_id == user_id)
        async with self._db.connection() as conn:
            return _totals((await conn.execute(query)).one())

    async def daily_use(self, user_id: int, since: datetime) -> DailyUse:
        """The user's own daily limit and the tokens they used since ``since``, in one statement
        (it runs before every turn of a user with an id)."""
        own = select(User.daily_token_limit).where(User.id == user_id).scalar_subquery()
        used = (
            select(func.coalesce(func.sum(_TOKENS), 0))
            .where(Usage.user_id == user_id, Usage.created_at >= utc(since))
            .scalar_subquery()
        )
        async with self._db.connection() as conn:
            limit, spent = (await conn.execute(select(own, used))).one()
        return DailyUse(None if limit is None else int(limit), int(spent))

    async def top_users(self, since: datetime, limit: int = 5) -> list[UserUsage]:
        """The users who used the most tokens since ``since``, most first, with their names."""
        tokens = func.sum(_TOKENS).label("tokens")
        ranked = (
            select(
                Usage.user_id.label("user_id"),
                func.count().label("calls"),
                func.coalesce(func.sum(Usage.prompt_tokens), 0).label("prompt"),
                func.coalesce(func.sum(Usage.completion_tokens), 0).label("completion"),
                func.coalesce(func.sum(Usage.cost), 0.0).label("cost"),
                tokens,
            )
            .where(Usage.created_at >= utc(since), Usage.user_id.is_not(None))
            .group_by(Usage.user_id)
            .order_by(tokens.desc(), Usage.user_id)
            .limit(limit)
            .subquery()
        )
        query = (
            select(ranked, User.display_name, User.username)
            .outerjoin(User, User.id == ranked.c.user_id)
            .order_by(ranked.c.tokens.desc(), ranked.c.user_id)
        )

        def read(conn: Connection) -> list[UserUsage]:
            return [
                UserUsage(
                    user_id=int(row.user_id),
                    display_name=row.display_name,
                    username=row.username,
                    totals=_totals((row.calls, row.prompt, row.completion, row.cost)),
                )
                for row in conn.execute(query)
            ]

        return await self._db.read(read)
