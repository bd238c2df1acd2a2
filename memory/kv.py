"""Small persisted runtime state, e.g. the model chosen with /model."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func

from memory.db import Database
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

    async def delete(self, key: str) -> None:
        async with self._db.session() as db:
            row = await db.get(KeyValue, key)
            if row is not None:
                await db.delete(row)
