"""Small persisted runtime state, e.g. the model chosen with /model."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from memory.db import Database, insert_on_conflict
from memory.models import KeyValue


class KeyValues:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, key: str, default: Any = None) -> Any:
        async with self._db.session() as db:
            row = await db.get(KeyValue, key)
            return default if row is None else row.value

    async def set(self, key: str, value: Any) -> None:
        async with self._db.session() as db:
            row = await db.get(KeyValue, key)
            if row is None:
                db.add(KeyValue(key=key, value=value))
            else:
                row.value = value
                row.updated_at = func.now()

    async def setdefault(self, key: str, value: Any) -> Any:
        """Store ``value`` under ``key`` unless a value is there already; the stored value.

        One transaction, insert-if-absent: processes starting together on one database keep
        the same value (the first to commit wins), where get-then-set would let each keep its own.
        """
        insert = insert_on_conflict(self._db.dialect, KeyValue).on_conflict_do_nothing()
        async with self._db.transaction() as conn:
            await conn.execute(insert, {"key": key, "value": value})
            return await conn.scalar(select(KeyValue.value).where(KeyValue.key == key))

    async def delete(self, key: str) -> None:
        async with self._db.session() as db:
            row = await db.get(KeyValue, key)
            if row is not None:
                await db.delete(row)
