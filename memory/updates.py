"""The inbound updates ledger: each Telegram update is answered once, as near as Telegram allows.

An update is recorded when it arrives (before any work), claimed by one running process,
and marked answered after the reply is sent. After a crash, updates still ``received`` or
``processing`` under an older process are replayed; a re-delivered update that is answered, or
claimed by this process already, is skipped.

Each Telegram message that carries part of an answer is recorded the moment Telegram
acknowledges it (``record_sent``, into the answer's ``messages.sent_message_ids``), so a replay
sends only the parts not recorded yet (``delivered``). What is left: a part Telegram accepted
whose acknowledgement the process did not live to write is sent again, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update

from memory.connection import Conn
from memory.db import Database, insert_on_conflict
from memory.models import InboundUpdate, Message
from memory.types import PendingUpdate, UpdateStatus

_OPEN = ("received", "processing")


# Built once, with bound parameters: building and keying a statement per call costs more than
# SQLite takes to run it, and these run for every message.
_CLAIM = (
    update(InboundUpdate)
    .where(
        (InboundUpdate.update_id == bindparam("uid"))
        & InboundUpdate.status.in_(_OPEN)
        & (InboundUpdate.claimed_by.is_(None) | (InboundUpdate.claimed_by != bindparam("owner")))
    )
    .values(status="processing", claimed_by=bindparam("owner"), attempts=InboundUpdate.attempts + 1)
)
_FINISH = (
    update(InboundUpdate)
    .where(InboundUpdate.update_id == bindparam("uid"))
    .values(status=bindparam("status"), error=bindparam("error"), finished_at=bindparam("at"), payload=None)
)
_FORGET = delete(InboundUpdate).where(
    (InboundUpdate.update_id == bindparam("uid")) & InboundUpdate.status.in_(_OPEN)
)
_SENT = update(Message).where(Message.id == bindparam("mid")).values(sent_message_ids=bindparam("sent"))
_DELIVERED = select(Message.sent_message_ids).where(Message.id == bindparam("mid"))


class UpdateLedger:
    """Every method is one short transaction of Core statements: ``arrive`` and ``finish`` run
    for every message, where the ORM's unit of work would cost several times the SQL."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert_new = insert_on_conflict(db.dialect, InboundUpdate).on_conflict_do_nothing()

    async def _insert(self, conn: Conn, values: dict[str, Any]) -> bool:
        """Insert the update's row unless it exists; whether it was inserted."""
        return bool((await conn.execute(self._insert_new, values)).rowcount)

    async def record(
        self, update_id: int, *, chat_id: int | None, user_id: int | None, payload: dict[str, Any] | None
    ) -> bool:
        """Record an arriving update; False when it was seen before."""
        values = dict(update_id=update_id, chat_id=chat_id, user_id=user_id, payload=payload)
        async with self._db.transaction() as conn:
            return await self._insert(conn, values)

    async def claim(self, update_id: int, owner: str) -> bool:
        """Take an open update for this process; False if answered or already ours."""
        async with self._db.transaction() as conn:
            return await self._claim(conn, update_id, owner)

    @staticmethod
    async def _claim(conn: Conn, update_id: int, owner: str) -> bool:
        return bool((await conn.execute(_CLAIM, {"uid": update_id, "owner": owner})).rowcount)

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
        values = dict(
            update_id=update_id,
            chat_id=chat_id,
            user_id=user_id,
            payload=payload,
            status="processing",
            claimed_by=owner,
            attempts=1,
        )
        async with self._db.transaction() as conn:
            return await self._insert(conn, values) or await self._claim(conn, update_id, owner)

    async def finish(
        self,
        update_id: int,
        status: UpdateStatus,
        error: str | None = None,
        *,
        sent: tuple[int, Sequence[int | None]] | None = None,
    ) -> None:
        """Close an update; the payload is dropped once it can no longer be replayed.

        ``sent``: (stored answer id, Telegram message ids that carried it), recorded in the same
        transaction, so an answered update and its delivery are stored together.
        """
        async with self._db.transaction() as conn:
            params = {"uid": update_id, "status": status, "error": error, "at": datetime.now(UTC)}
            await conn.execute(_FINISH, params)
            if sent is not None:
                message_id, telegram_ids = sent
                await conn.execute(_SENT, {"mid": message_id, "sent": list(telegram_ids)})

    async def record_sent(self, answer_id: int, telegram_ids: Sequence[int | None]) -> None:
        """Record the Telegram messages that carried the answer ``answer_id`` so far, one per
        chunk in order (None: a chunk that may or may not have arrived, not to be sent again).

        One statement in its own transaction, run as soon as Telegram acknowledges a chunk:
        until it commits, a crash would send that chunk again.
        """
        async with self._db.transaction() as conn:
            await conn.execute(_SENT, {"mid": answer_id, "sent": list(telegram_ids)})

    async def delivered(self, answer_id: int) -> list[int | None]:
        """What ``record_sent`` recorded for an answer: one entry per chunk already dealt with."""
        async with self._db.connection() as conn:
            sent = await conn.scalar(_DELIVERED, {"mid": answer_id})
        return list(sent or [])

    async def forget(self, update_id: int) -> None:
        """Delete an open update's row: one recorded on arrival (the webhook records every
        update before acknowledging it) that the bot does not act on, e.g. a stranger's message,
        leaves no trace and is never replayed. A no-op for an update never recorded."""
        async with self._db.transaction() as conn:
            await conn.execute(_FORGET, {"uid": update_id})

    async def status(self, update_id: int) -> UpdateStatus | None:
        async with self._db.session() as db:
            value: UpdateStatus | None = await db.scalar(
                select(InboundUpdate.status).where(InboundUpdate.update_id == update_id)
            )
            return value

    async def pending(self, owner: str, max_attempts: int = 3) -> list[PendingUpdate]:
        """Open updates left by another (dead) process, oldest first, for replay at start."""
        async with self._db.session() as db:
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
