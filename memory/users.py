"""Users and the access decisions admins make in chat (/allow, /deny)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, select

from memory.db import Database, insert_on_conflict
from memory.models import User
from memory.types import Access, UserRecord


def _record(row: Any) -> UserRecord:
    """From an ORM ``User`` or a row of the users table."""
    access: Access | None = row.access if row.access in ("allowed", "denied") else None
    return UserRecord(
        id=row.id,
        display_name=row.display_name,
        username=row.username,
        role=row.role,
        access=access,
        access_by=row.access_by,
        access_at=row.access_at,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        daily_token_limit=row.daily_token_limit,
    )


_REFRESHED = ("display_name", "username", "role", "last_seen_at")


def _touch_statement(dialect: str) -> Any:
    """Insert a user, or refresh the row with what Telegram says now; built once."""
    stmt = insert_on_conflict(dialect, User).values(
        id=bindparam("id"), **{name: bindparam(name) for name in _REFRESHED}
    )
    refreshed = {name: stmt.excluded[name] for name in _REFRESHED}
    return stmt.on_conflict_do_update(index_elements=[User.id], set_=refreshed).returning(*User.__table__.c)


class Users:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._touch = _touch_statement(db.dialect)

    async def get(self, user_id: int) -> UserRecord | None:
        async with self._db.session() as db:
            row = await db.get(User, user_id)
            return None if row is None else _record(row)

    async def access_of(self, user_id: int) -> Access | None:
        """The admin's in-chat decision for this user, if any (the hot path of the access gate)."""
        async with self._db.session() as db:
            value: Access | None = await db.scalar(select(User.access).where(User.id == user_id))
            return value if value in ("allowed", "denied") else None

    async def decisions(self) -> dict[int, Access]:
        """Every admin decision (/allow, /deny) by user id: few rows, read once into the gate."""
        async with self._db.session() as db:
            rows = await db.execute(
                select(User.id, User.access).where(User.access.in_(("allowed", "denied")))
            )
            return {int(user_id): "allowed" if access == "allowed" else "denied" for user_id, access in rows}

    async def touch(
        self, user_id: int, *, display_name: str | None, username: str | None, is_admin: bool
    ) -> UserRecord:
        """Create or refresh a user the gate let through (one upsert: first contact is hot too)."""
        values = dict(
            id=user_id,
            display_name=display_name,
            username=username,
            role="admin" if is_admin else "user",
            last_seen_at=datetime.now(UTC),
        )
        async with self._db.transaction() as conn:
            return _record((await conn.execute(self._touch, values)).one())

    async def set_access(self, user_id: int, access: Access, *, by: int) -> UserRecord:
        """Persist an admin's /allow or /deny; it survives restarts and beats the env allow list."""
        async with self._db.session() as db:
            row = await db.get(User, user_id)
            if row is None:
                row = User(id=user_id)
                db.add(row)
            row.access = access
            row.access_by = by
            row.access_at = datetime.now(UTC)
            await db.flush()
            await db.refresh(row)
            return _record(row)

    async def set_daily_limit(self, user_id: int, tokens: int | None) -> UserRecord:
        """An admin's /limit: tokens per UTC day, 0 for none, None to follow the default."""
        async with self._db.session() as db:
            row = await db.get(User, user_id)
            if row is None:  # not seen yet: the limit waits for their first message
                row = User(id=user_id)
                db.add(row)
            row.daily_token_limit = tokens
            await db.flush()
            await db.refresh(row)
            return _record(row)

    async def list(self, limit: int = 200) -> list[UserRecord]:
        async with self._db.session() as db:
            rows = await db.scalars(
                select(User).order_by(User.last_seen_at.desc().nulls_last(), User.id).limit(limit)
            )
            return [_record(r) for r in rows]

    async def count(self) -> int:
        async with self._db.session() as db:
            return int(await db.scalar(select(func.count()).select_from(User)) or 0)
