"""Scheduled jobs (reminders and tasks): each user's own, and the types the scheduler shares.

Every method that names a job takes its owner's user id and touches no other user's job. When
and how jobs fire is :mod:`memory.job_runs`; the rules of time (cron, intervals, zones) are the
agent's (agent/schedule.py).

Times are bound as aware UTC datetimes: SQLite stores the UTC wall time (SQLAlchemy drops the
offset) and gives back naive ones, which :func:`memory.usage.utc` makes aware again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, func, insert, select, text, update

from memory.connection import Conn
from memory.db import Database, insert_on_conflict
from memory.errors import JobLimitReached
from memory.locks import lock_key
from memory.models import JobRun, ScheduledJob, User
from memory.usage import utc

JobKind = Literal["reminder", "task"]
ScheduleKind = Literal["once", "cron", "interval"]
JobState = Literal["active", "paused", "done", "cancelled", "missed"]
RunStatus = Literal["claimed", "delivered", "failed", "missed"]

OPEN_STATES = ("active", "paused")
_USER_LOCK = text("SELECT pg_advisory_xact_lock(:key)")  # what counts against a user's limit and is listed


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to store; ``next_run_at`` is its first due time (agent/schedule.py computes it)."""

    user_id: int
    chat_id: int
    thread_id: int | None
    session_key: str
    kind: JobKind
    text: str
    schedule: ScheduleKind
    timezone: str
    next_run_at: datetime
    cron: str | None = None
    interval_s: int | None = None
    start_at: datetime | None = None  # once: the time; interval: the first run, the phase


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    user_id: int
    chat_id: int
    thread_id: int | None
    session_key: str
    kind: JobKind
    text: str
    schedule: ScheduleKind
    cron: str | None
    interval_s: int | None
    start_at: datetime | None
    timezone: str
    next_run_at: datetime | None
    state: JobState
    fire_count: int
    last_run_at: datetime | None
    last_status: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Run:
    """One firing of ``job`` at ``due_at``; ``attempt`` counts takeovers after a crash."""

    id: int
    job: Job
    due_at: datetime
    status: RunStatus
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class Claimed:
    """Runs to fire now, and runs not fired: found past the grace period (``missed``) or given up
    after their worker died too often (``failed``); the caller tells their users."""

    fire: list[Run] = field(default_factory=list)
    missed: list[Run] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class JobTotals:
    """Everyone's jobs, for /status."""

    active: int
    paused: int
    users: int  # with at least one active or paused job


NextRun = Callable[[Job, datetime], "datetime | None"]

JOB_COLUMNS = tuple(ScheduledJob.__table__.c)


def job_of(row: Any) -> Job:
    """A ``scheduled_jobs`` row (all of ``JOB_COLUMNS``) as a :class:`Job`."""
    m = row._mapping
    return Job(
        id=m["id"],
        user_id=m["user_id"],
        chat_id=m["chat_id"],
        thread_id=m["thread_id"],
        session_key=m["session_key"],
        kind=m["kind"],
        text=m["text"],
        schedule=m["schedule"],
        cron=m["cron"],
        interval_s=m["interval_s"],
        start_at=None if m["start_at"] is None else utc(m["start_at"]),
        timezone=m["timezone"],
        next_run_at=None if m["next_run_at"] is None else utc(m["next_run_at"]),
        state=m["state"],
        fire_count=m["fire_count"],
        last_run_at=None if m["last_run_at"] is None else utc(m["last_run_at"]),
        last_status=m["last_status"],
        created_at=utc(m["created_at"]),
    )


class Schedules:
    """Every method that names a job takes its owner's user id, and touches no other user's job."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, job: NewJob, *, max_jobs: int | None = None) -> Job:
        """Store a job; :class:`JobLimitReached` when the user already has ``max_jobs`` open."""
        values = dict(
            user_id=job.user_id,
            chat_id=job.chat_id,
            thread_id=job.thread_id,
            session_key=job.session_key,
            kind=job.kind,
            text=job.text,
            schedule=job.schedule,
            cron=job.cron,
            interval_s=job.interval_s,
            start_at=None if job.start_at is None else utc(job.start_at),
            timezone=job.timezone,
            next_run_at=utc(job.next_run_at),
            state="active",
        )
        async with self._db.transaction() as conn:
            if max_jobs is not None and self._db.dialect == "postgresql":
                # Counted and inserted under the user's lock until the commit: the model may call
                # the tool several times in one step, and two creates must not both see room.
                # (SQLite runs one writing transaction at a time: nothing to lock there.)
                await conn.execute(_USER_LOCK, {"key": lock_key(f"jobs:{job.user_id}")})
            if max_jobs is not None and await self._count(conn, job.user_id) >= max_jobs:
                raise JobLimitReached(max_jobs)
            new_id = await conn.scalar(insert(ScheduledJob).values(values).returning(ScheduledJob.id))
            return job_of((await conn.execute(select(*JOB_COLUMNS).where(ScheduledJob.id == new_id))).one())

    async def jobs(self, user_id: int, *, finished: bool = False) -> list[Job]:
        """The user's active and paused jobs (with ``finished``, all), soonest first."""
        query = select(*JOB_COLUMNS).where(ScheduledJob.user_id == user_id)
        if not finished:
            query = query.where(ScheduledJob.state.in_(OPEN_STATES))
        query = query.order_by(ScheduledJob.next_run_at.is_(None), ScheduledJob.next_run_at, ScheduledJob.id)
        async with self._db.connection() as conn:
            return [job_of(r) for r in await conn.execute(query)]

    async def get(self, user_id: int, job_id: int) -> Job | None:
        async with self._db.connection() as conn:
            return await self._get(conn, user_id, job_id)

    async def count(self, user_id: int) -> int:
        """The user's active and paused jobs (what the limit counts)."""
        async with self._db.connection() as conn:
            return await self._count(conn, user_id)

    async def totals(self) -> JobTotals:
        query = select(
            func.count().filter(ScheduledJob.state == "active"),
            func.count().filter(ScheduledJob.state == "paused"),
            func.count(ScheduledJob.user_id.distinct()),
        ).where(ScheduledJob.state.in_(OPEN_STATES))
        async with self._db.connection() as conn:
            active, paused, users = (await conn.execute(query)).one()
        return JobTotals(int(active), int(paused), int(users))

    async def pause(self, user_id: int, job_id: int) -> Job | None:
        """Pause an active job; None when the user has no such active job."""
        return await self._set_state(user_id, job_id, ("active",), {"state": "paused"})

    async def resume(self, user_id: int, job_id: int, next_run_at: datetime) -> Job | None:
        """Make a paused job active again, next due at ``next_run_at``; None when the user has
        no such paused job."""
        values = {"state": "active", "next_run_at": utc(next_run_at)}
        return await self._set_state(user_id, job_id, ("paused",), values)

    async def cancel(self, user_id: int, job_id: int) -> Job | None:
        """Cancel an active or paused job; None when the user has no such job. A run already
        claimed still completes."""
        return await self._set_state(
            user_id, job_id, OPEN_STATES, {"state": "cancelled", "next_run_at": None}
        )

    async def forget(self, user_id: int) -> int:
        """Delete every job of the user and its runs (/forget all); how many jobs."""
        async with self._db.transaction() as conn:
            ids = select(ScheduledJob.id).where(ScheduledJob.user_id == user_id)
            await conn.execute(delete(JobRun).where(JobRun.job_id.in_(ids)))
            result = await conn.execute(delete(ScheduledJob).where(ScheduledJob.user_id == user_id))
        return int(result.rowcount)

    async def set_timezone(self, user_id: int, zone: str | None) -> None:
        """The user's zone (an IANA name the caller checked; None: back to the default)."""
        upsert = insert_on_conflict(self._db.dialect, User.__table__).values(id=user_id, timezone=zone)
        upsert = upsert.on_conflict_do_update(index_elements=[User.id], set_={"timezone": zone})
        async with self._db.transaction() as conn:
            await conn.execute(upsert)

    async def timezone(self, user_id: int) -> str | None:
        async with self._db.connection() as conn:
            zone: str | None = await conn.scalar(select(User.timezone).where(User.id == user_id))
            return zone

    async def _get(self, conn: Conn, user_id: int, job_id: int) -> Job | None:
        query = select(*JOB_COLUMNS).where((ScheduledJob.id == job_id) & (ScheduledJob.user_id == user_id))
        row = (await conn.execute(query)).first()
        return None if row is None else job_of(row)

    async def _count(self, conn: Conn, user_id: int) -> int:
        query = select(func.count()).where(
            (ScheduledJob.user_id == user_id) & ScheduledJob.state.in_(OPEN_STATES)
        )
        return int(await conn.scalar(query) or 0)

    async def _set_state(
        self, user_id: int, job_id: int, from_states: tuple[str, ...], values: dict[str, Any]
    ) -> Job | None:
        statement = (
            update(ScheduledJob)
            .where(
                (ScheduledJob.id == job_id)
                & (ScheduledJob.user_id == user_id)
                & ScheduledJob.state.in_(from_states)
            )
            .values(values)
        )
        async with self._db.transaction() as conn:
            if not (await conn.execute(statement)).rowcount:
                return None
            return await self._get(conn, user_id, job_id)
