"""The inbound updates ledger: each Telegram update is answered once, as near as Telegram allows.

An update is recorded when it arrives (before any work), claimed by one worker, and marked
answered after the reply is sent. A claim holds a lease the worker renews while it works
(``renew``); an open update whose lease ran out, or whose worker is known to be gone
(``release_gone``), is ``pending`` for another worker to replay, and the claim lets exactly one
take it. A re-delivered update that is answered, or claimed by a live worker, is skipped. A
chat's updates are answered in order across workers: ``turn_of`` says when the older ones are
done.

Each Telegram message that carries part of an answer is recorded the moment Telegram
acknowledges it (``record_sent``, into the answer's ``messages.sent_message_ids``), so a replay
sends only the parts not recorded yet (``delivered``). What is left: a part Telegram accepted
whose acknowledgement the process did not live to write is sent again, once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update

from memory.connection import Conn
from memory.db import Database, insert_on_conflict
from memory.models import InboundUpdate, Message
from memory.types import PendingUpdate, UpdateStatus

_OPEN = ("received", "processing")
# A recorded update the gate claims within milliseconds unless its worker died first. Past this,
# another worker replays it; should the recording worker be merely slow, the claim still lets
# only one of them answer it.
UNCLAIMED_GRACE = timedelta(seconds=2)


# Built once, with bound parameters: building and keying a statement per call costs more than
# SQLite takes to run it, and these run for every message.
# Whether an open update may be taken by a worker other than its claimant: nobody claimed it,
# or the claim's lease ran out (its worker stopped renewing it) or was released (its worker is
# known to be gone). NULL leases are also rows claimed before leases existed (0005).
_TAKEABLE = (
    InboundUpdate.claimed_by.is_(None)
    | InboundUpdate.lease_until.is_(None)
    | (InboundUpdate.lease_until < bindparam("now"))
)
_CLAIM = (
    update(InboundUpdate)
    .where(
        (InboundUpdate.update_id == bindparam("uid"))
        & InboundUpdate.status.in_(_OPEN)
        & (InboundUpdate.claimed_by.is_(None) | (InboundUpdate.claimed_by != bindparam("owner")))
        & _TAKEABLE
    )
    .values(
        status="processing",
        claimed_by=bindparam("owner"),
        lease_until=bindparam("until"),
        attempts=InboundUpdate.attempts + 1,
    )
)
_RENEW = (
    update(InboundUpdate)
    .where((InboundUpdate.claimed_by == bindparam("owner")) & InboundUpdate.status.in_(_OPEN))
    .values(lease_until=bindparam("until"))
)
_RELEASE = (
    update(InboundUpdate)
    .where((InboundUpdate.claimed_by == bindparam("claimant")) & InboundUpdate.status.in_(_OPEN))
    .values(lease_until=None)
)
_CLAIMANTS = (
    select(InboundUpdate.claimed_by)
    .where(InboundUpdate.status.in_(_OPEN) & InboundUpdate.claimed_by.is_not(None))
    .distinct()
)
# An older update of the chat still being worked on, or just recorded and about to be: the
# younger one waits its turn. One whose lease ran out does not hold the chat up (it is taken
# over and replayed, after the younger one if need be).
_OLDER_OPEN = (
    select(InboundUpdate.update_id)
    .where(
        (InboundUpdate.chat_id == bindparam("chat"))
        & (InboundUpdate.update_id < bindparam("uid"))
        & InboundUpdate.status.in_(_OPEN)
        & (InboundUpdate.claimed_by.is_(None) | (InboundUpdate.claimed_by != bindparam("owner")))
        & (
            (InboundUpdate.lease_until > bindparam("now"))
            | (InboundUpdate.claimed_by.is_(None) & (InboundUpdate.received_at > bindparam("recent")))
        )
    )
    .limit(1)
)
_STILL_OURS = select(InboundUpdate.update_id).where(
    (InboundUpdate.update_id == bindparam("uid"))
    & InboundUpdate.status.in_(_OPEN)
    & (InboundUpdate.claimed_by == bindparam("owner"))
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

    def __init__(self, db: Database, lease_s: float = 60.0) -> None:
        self._db = db
        self._insert_new = insert_on_conflict(db.dialect, InboundUpdate).on_conflict_do_nothing()
        self.lease = timedelta(seconds=lease_s)  # how long a claim holds unless renewed

    def _until(self) -> datetime:
        return datetime.now(UTC) + self.lease

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

    async def _claim(self, conn: Conn, update_id: int, owner: str) -> bool:
        params = {"uid": update_id, "owner": owner, "now": datetime.now(UTC), "until": self._until()}
        return bool((await conn.execute(_CLAIM, params)).rowcount)

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
            lease_until=self._until(),
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

    async def pending(
        self, owner: str, max_attempts: int = 3, *, unclaimed_after: timedelta = UNCLAIMED_GRACE
    ) -> list[PendingUpdate]:
        """Open updates another worker may no longer be answering, oldest first, for replay:
        claimed by a worker whose lease ran out or was released, or never claimed (recorded by a
        webhook that died before its gate ran) for ``unclaimed_after``."""
        now = datetime.now(UTC)
        recorded_before = now - unclaimed_after
        async with self._db.session() as db:
            rows = await db.scalars(
                select(InboundUpdate)
                .where(
                    InboundUpdate.status.in_(_OPEN),
                    InboundUpdate.attempts < max_attempts,
                    (InboundUpdate.claimed_by.is_(None) & (InboundUpdate.received_at <= recorded_before))
                    | (
                        (InboundUpdate.claimed_by != owner)
                        & (InboundUpdate.lease_until.is_(None) | (InboundUpdate.lease_until < now))
                    ),
                )
                .order_by(InboundUpdate.update_id)
            )
            return [PendingUpdate(r.update_id, r.chat_id, r.user_id, r.payload, r.attempts) for r in rows]

    async def renew(self, owner: str) -> int:
        """Extend the leases of every open update ``owner`` claimed; how many there are."""
        async with self._db.transaction() as conn:
            result = await conn.execute(_RENEW, {"owner": owner, "until": self._until()})
            return int(result.rowcount)

    async def release_gone(self, gone: Callable[[str], bool]) -> int:
        """Let other workers take over at once the open updates of claimants ``gone`` says
        no longer run (a worker of this machine that was killed); how many claimants."""
        async with self._db.connection() as conn:
            claimants = [str(c) for c in (await conn.execute(_CLAIMANTS)).scalars()]
        dead = [c for c in claimants if gone(c)]
        for claimant in dead:
            async with self._db.transaction() as conn:
                await conn.execute(_RELEASE, {"claimant": claimant})
        return len(dead)

    async def turn_of(self, chat_id: int, update_id: int, owner: str) -> bool:
        """Whether no older update of the chat is still being worked on (or about to be) by
        a worker other than ``owner``, whose own queue orders its updates."""
        now = datetime.now(UTC)
        params = {"chat": chat_id, "uid": update_id, "owner": owner, "now": now, "recent": now - self.lease}
        async with self._db.connection() as conn:
            return await conn.scalar(_OLDER_OPEN, params) is None

    async def still_ours(self, update_id: int, owner: str) -> bool:
        """Whether ``owner`` still holds the open update (no other worker took it over)."""
        async with self._db.connection() as conn:
            return await conn.scalar(_STILL_OURS, {"uid": update_id, "owner": owner}) is not None
