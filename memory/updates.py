"""The inbound updates ledger: each Telegram update is answered exactly once.

An update is recorded when it arrives (before any work), claimed by one running process,
and marked answered after the reply is sent. After a crash, updates still ``received`` or
``processing`` under an older process are replayed; a re-delivered update that is answered, or
claimed by this process already, is skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from memory.models import InboundUpdate, Message
from memory.types import PendingUpdate, UpdateStatus

_OPEN = ("received", "processing")


class UpdateLedger:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def record(
        self, update_id: int, *, chat_id: int | None, user_id: int | None, payload: dict[str, Any] | None
    ) -> bool:
        """Record an arriving update; False when it was seen before."""
        async with self._sessions.begin() as db:
            if (await db.connection()).dialect.name == "sqlite":
                stmt = (
                    sqlite_insert(InboundUpdate)
                    .values(update_id=update_id, chat_id=chat_id, user_id=user_id, payload=payload)
                    .on_conflict_do_nothing(index_elements=["update_id"])
                )
                result = await db.execute(stmt)
                return bool(result.rowcount)  # type: ignore[attr-defined]
            if await db.get(InboundUpdate, update_id) is not None:
                return False
            db.add(InboundUpdate(update_id=update_id, chat_id=chat_id, user_id=user_id, payload=payload))
            return True

    async def claim(self, update_id: int, owner: str) -> bool:
        """Take an open update for this process; False if answered or already ours."""
        async with self._sessions.begin() as db:
            result = await db.execute(
                update(InboundUpdate)
                .where(
                    InboundUpdate.update_id == update_id,
                    InboundUpdate.status.in_(_OPEN),
                    (InboundUpdate.claimed_by.is_(None)) | (InboundUpdate.claimed_by != owner),
                )
                .values(status="processing", claimed_by=owner, attempts=InboundUpdate.attempts + 1)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def arrive(
        self,
        update_id: int,
        owner: str,
        *,
        chat_id: int | None,
        user_id: int | None,
        payload: dict[str, Any] | None,
    ) -> bool:
        """``record`` and ``claim`` in one transaction (the bot's hot path); True: ours to answer."""
        async with self._sessions.begin() as db:
            row = await db.get(InboundUpdate, update_id)
            if row is None:
                db.add(
                    InboundUpdate(
                        update_id=update_id,
                        chat_id=chat_id,
                        user_id=user_id,
                        payload=payload,
                        status="processing",
                        claimed_by=owner,
                        attempts=1,
                    )
                )
                return True
            if row.status not in _OPEN or row.claimed_by == owner:
                return False
            row.status, row.claimed_by, row.attempts = "processing", owner, row.attempts + 1
            return True

    async def finish(
        self,
        update_id: int,
        status: UpdateStatus,
        error: str | None = None,
        *,
        sent: tuple[int, list[int]] | None = None,
    ) -> None:
        """Close an update; the payload is dropped once it can no longer be replayed.

        ``sent``: (stored answer id, Telegram message ids that carried it), recorded in the same
        transaction, so an answered update and its delivery are stored together.
        """
        async with self._sessions.begin() as db:
            await db.execute(
                update(InboundUpdate)
                .where(InboundUpdate.update_id == update_id)
                .values(status=status, error=error, finished_at=datetime.now(UTC), payload=None)
            )
            if sent is not None:
                message_id, telegram_ids = sent
                await db.execute(
                    update(Message)
                    .where(Message.id == message_id)
                    .values(sent_message_ids=list(telegram_ids))
                )

    async def status(self, update_id: int) -> UpdateStatus | None:
        async with self._sessions() as db:
            value = await db.scalar(select(InboundUpdate.status).where(InboundUpdate.update_id == update_id))
            return value  # type: ignore[return-value]

    async def pending(self, owner: str, max_attempts: int = 3) -> list[PendingUpdate]:
        """Open updates left by another (dead) process, oldest first, for replay at start."""
        async with self._sessions() as db:
            rows = await db.scalars(
                select(InboundUpdate)
                .where(
                    InboundUpdate.status.in_(_OPEN),
                    (InboundUpdate.claimed_by.is_(None)) | (InboundUpdate.claimed_by != owner),
                    InboundUpdate.attempts < max_attempts,
                )
                .order_by(InboundUpdate.update_id)
            )
            return [PendingUpdate(r.update_id, r.chat_id, r.user_id, r.payload, r.attempts) for r in rows]
