"""Per-call LLM usage: tokens, cost, latency."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select

from memory.db import Database
from memory.models import Usage
from memory.types import UsageRecord, UsageTotals


def usage_values(usage: UsageRecord) -> dict[str, Any]:
    return dict(
        user_id=usage.user_id,
        session_id=usage.session_id,
        model=usage.model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost=usage.cost,
        latency_ms=usage.latency_ms,
    )


class UsageLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, usage: UsageRecord) -> None:
        async with self._db.session() as db:
            await db.execute(insert(Usage).values(**usage_values(usage)))

    async def totals(self, user_id: int | None = None, since: datetime | None = None) -> UsageTotals:
        """Sum over all calls, or one user's, optionally since a moment (naive UTC)."""
        query = select(
            func.count(),
            func.coalesce(func.sum(Usage.prompt_tokens), 0),
            func.coalesce(func.sum(Usage.completion_tokens), 0),
            func.coalesce(func.sum(Usage.cost), 0.0),
        )
        if user_id is not None:
            query = query.where(Usage.user_id == user_id)
        if since is not None:
            query = query.where(Usage.created_at >= since)
        async with self._db.session() as db:
            calls, prompt, completion, cost = (await db.execute(query)).one()
        return UsageTotals(int(calls), int(prompt), int(completion), float(cost))
