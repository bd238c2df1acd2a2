"""Small persisted runtime state, e.g. the model chosen with /model."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from memory.models import KeyValue


class KeyValues:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def get(self, key: str, default: Any = None) -> Any:
        async with self._sessions() as db:
            row = await db.get(KeyValue, key)
            return default if row is None else row.value

    async def set(self, key: str, value: Any) -> None:
        async with self._sessions.begin() as db:
            row = await db.get(KeyValue, key)
            if row is None:
                db.add(KeyValue(key=key, value=value))
            else:
                row.value = value
                row.updated_at = func.now()

    async def delete(self, key: str) -> None:
        async with self._sessions.begin() as db:
            row = await db.get(KeyValue, key)
            if row is not None:
                await db.delete(row)
