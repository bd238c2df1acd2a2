"""The firings of scheduled jobs: each due time claimed by one worker, fired, and recorded.

A job's next due time is ``next_run_at``. :meth:`JobRuns.claim_due` takes a due job in one
transaction: it locks the job's row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so a second
worker passes over it rather than wait), inserts the firing into ``job_runs`` (unique per job and
due time: should two workers still meet, the second insert does nothing and that worker fires
nothing) and moves the job on (the next occurrence, or ``done`` for a one-shot). The caller then
fires the run and records the outcome (:meth:`JobRuns.delivered`, :meth:`JobRuns.failed`).

A claimed run holds a lease its worker renews (:meth:`JobRuns.renew`). A run whose worker died
(its lease ran out, or ``gone`` says so) is taken over by :meth:`JobRuns.reclaim` and fired
again: delivery is exactly once except in the window between Telegram accepting the message and
:meth:`JobRuns.delivered` committing, where a crash sends it a second time (as the chat's
answers, memory/updates.py).

A due time found more than ``grace`` late (the bot was down) is not fired: its run is stored as
``missed`` and returned so the caller can tell the user; a recurring job then skips to its next
occurrence after now instead of firing every one it missed.

The rules of time come in as ``next_run``, a function of the job and a moment
(agent/scheduler.py), so this module stays free of them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update

from memory.connection import Conn
from memory.db import Database, insert_on_conflict
from memory.models import JobRun, ScheduledJob
from memory.schedules import JOB_COLUMNS, Claimed, NextRun, Run, RunStatus, job_of
from memory.usage import utc


class JobRuns:
    """The scheduler's side of the jobs: what is due, who fires it, how it went."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def next_due(self) -> datetime | None:
        """When the soonest active job is due (the first entry of the partial index)."""
        async with self._db.connection() as conn:
            due = await conn.scalar(
                select(func.min(ScheduledJob.next_run_at)).where(ScheduledJob.state == "active")
            )
        return None if due is None else utc(due)

    async def claim_due(
        self,
        now: datetime,
        owner: str,
        *,
        next_run: NextRun,
        lease_s: float,
        grace_s: float,
        limit: int = 100,
    ) -> Claimed:
        """Claim up to ``limit`` due jobs for ``owner``, each in its own transaction."""
        now = utc(now)
        due_ids = (
            select(ScheduledJob.id)
            .where((ScheduledJob.state == "active") & (ScheduledJob.next_run_at <= now))
            .order_by(ScheduledJob.next_run_at)
            .limit(limit)
        )
        async with self._db.connection() as conn:
            ids = list((await conn.execute(due_ids)).scalars())
        claimed = Claimed()
        for job_id in ids:
            async with self._db.transaction() as conn:
                run = await self._claim_one(conn, job_id, now, owner, next_run, lease_s, grace_s)
            if run is not None:
                (claimed.fire if run.status == "claimed" else claimed.missed).append(run)
        return claimed

    async def _claim_one(
        self,
        conn: Conn,
        job_id: int,
        now: datetime,
        owner: str,
        next_run: NextRun,
        lease_s: float,
        grace_s: float,
    ) -> Run | None:
        locked = (
            select(*JOB_COLUMNS)
            .where(
                (ScheduledJob.id == job_id)
                & (ScheduledJob.state == "active")
                & (ScheduledJob.next_run_at <= now)
            )
            .with_for_update(skip_locked=True)  # no-op on SQLite, where one process claims
        )
        row = (await conn.execute(locked)).first()
        if row is None:  # another worker has it, or moved it on
            return None
        job = job_of(row)
        due = job.next_run_at
        assert due is not None  # selected by next_run_at <= now
        late = now - due > timedelta(seconds=grace_s)
        status: RunStatus = "missed" if late else "claimed"
        following = None if job.schedule == "once" else next_run(job, max(now, due))
        state = ("missed" if late else "done") if job.schedule == "once" else "active"
        if following is None and job.schedule != "once":
            state = "done"  # a cron expression with no future occurrence
        await conn.execute(
            update(ScheduledJob)
            .where(ScheduledJob.id == job_id)
            .values(next_run_at=following, state=state, last_run_at=due, last_status=status)
        )
        run_values = dict(
            job_id=job_id,
            due_at=due,
            status=status,
            claimed_by=owner,
            lease_until=None if late else now + timedelta(seconds=lease_s),
            finished_at=now if late else None,
            claimed_at=now,
        )
        insert_run = insert_on_conflict(conn.dialect.name, JobRun.__table__).values(run_values)
        insert_run = insert_run.on_conflict_do_nothing(index_elements=["job_id", "due_at"])
        run_id = await conn.scalar(insert_run.returning(JobRun.id))
        if run_id is None:  # this due time was fired before: only moving the job on was left
            return None
        return Run(int(run_id), job, due, status)

    async def renew(self, owner: str, now: datetime, lease_s: float) -> int:
        """Extend the leases of the runs ``owner`` is firing; how many."""
        statement = (
            update(JobRun)
            .where((JobRun.claimed_by == owner) & (JobRun.status == "claimed"))
            .values(lease_until=utc(now) + timedelta(seconds=lease_s))
        )
        async with self._db.transaction() as conn:
            return int((await conn.execute(statement)).rowcount)

    async def reclaim(
        self,
        now: datetime,
        owner: str,
        *,
        gone: Callable[[str], bool],
        lease_s: float,
        grace_s: float,
        max_attempts: int = 3,
    ) -> Claimed:
        """Take over the runs of workers that died between claim and delivery: fire them again
        (``fire``), unless past the grace period (``missed``) or tried ``max_attempts`` times
        (``failed``: a run that kills its worker must not kill every worker in turn)."""
        now = utc(now)
        orphans = select(JobRun.id, JobRun.claimed_by, JobRun.lease_until).where(
            (JobRun.status == "claimed") & (JobRun.claimed_by != owner)
        )
        async with self._db.connection() as conn:
            rows = list(await conn.execute(orphans))
        claimed = Claimed()
        for run_id, claimant, lease in rows:
            if not (lease is None or utc(lease) < now or gone(str(claimant))):
                continue
            async with self._db.transaction() as conn:
                run = await self._take_over(
                    conn, run_id, claimant, now, owner, lease_s, grace_s, max_attempts
                )
            if run is not None:
                (claimed.fire if run.status == "claimed" else claimed.missed).append(run)
        return claimed

    async def _take_over(
        self,
        conn: Conn,
        run_id: int,
        claimant: str,
        now: datetime,
        owner: str,
        lease_s: float,
        grace_s: float,
        max_attempts: int,
    ) -> Run | None:
        row = (
            await conn.execute(
                select(JobRun.due_at, JobRun.attempts, JobRun.job_id).where(JobRun.id == run_id)
            )
        ).first()
        if row is None:
            return None
        due, attempts, job_id = utc(row[0]), int(row[1]), int(row[2])
        status: RunStatus = "claimed"
        error = None
        if now - due > timedelta(seconds=grace_s):
            status = "missed"
        elif attempts >= max_attempts:
            status, error = "failed", f"its worker stopped {attempts} times while firing it"
        finished = status != "claimed"
        taken = await conn.execute(
            update(JobRun)
            .where((JobRun.id == run_id) & (JobRun.status == "claimed") & (JobRun.claimed_by == claimant))
            .values(
                status=status,
                claimed_by=owner,
                attempts=attempts + (0 if finished else 1),
                lease_until=None if finished else now + timedelta(seconds=lease_s),
                finished_at=now if finished else None,
                error=error,
            )
        )
        if not taken.rowcount:  # another worker took it first
            return None
        if finished:
            await conn.execute(
                update(ScheduledJob)
                .where(ScheduledJob.id == job_id)
                .values(last_status=status, last_error=error)
            )
        job = job_of((await conn.execute(select(*JOB_COLUMNS).where(ScheduledJob.id == job_id))).one())
        return Run(run_id, job, due, status, attempts + (0 if finished else 1))

    async def delivered(self, run_id: int, message_id: int | None, now: datetime) -> None:
        """Record a fired run as delivered (``message_id``: the Telegram message that carried it)."""
        await self._finish(run_id, now, "delivered", message_id=message_id)

    async def failed(self, run_id: int, error: str, now: datetime) -> None:
        """Record a run whose firing failed (not retried: the job's next occurrence stands)."""
        await self._finish(run_id, now, "failed", error=error[:1000])

    async def prune(self, before: datetime) -> int:
        """Delete finished runs that ended before ``before``; how many. Only a due time a job
        may still be claimed for needs its run kept (the unique key that stops a second firing):
        the one in flight, or the last few, never a day-old one."""
        statement = delete(JobRun).where((JobRun.status != "claimed") & (JobRun.finished_at < utc(before)))
        async with self._db.transaction() as conn:
            return int((await conn.execute(statement)).rowcount)

    async def running(self, user_id: int) -> list[Run]:
        """The user's runs being fired now (claimed, not finished), oldest first (/jobs)."""
        query = (
            select(
                JobRun.id.label("run_id"),
                JobRun.due_at.label("run_due_at"),
                JobRun.status.label("run_status"),
                JobRun.attempts.label("run_attempts"),
                *JOB_COLUMNS,
            )
            .join(ScheduledJob, ScheduledJob.id == JobRun.job_id)
            .where((ScheduledJob.user_id == user_id) & (JobRun.status == "claimed"))
            .order_by(JobRun.due_at)
        )
        async with self._db.connection() as conn:
            rows = (await conn.execute(query)).all()
        return [Run(row[0], job_of(row), utc(row[1]), row[2], row[3]) for row in rows]

    async def run_status(self, run_id: int) -> RunStatus | None:
        async with self._db.connection() as conn:
            status: RunStatus | None = await conn.scalar(select(JobRun.status).where(JobRun.id == run_id))
            return status

    async def _finish(
        self,
        run_id: int,
        now: datetime,
        status: RunStatus,
        *,
        message_id: int | None = None,
        error: str | None = None,
    ) -> None:
        async with self._db.transaction() as conn:
            job_id = await conn.scalar(
                update(JobRun)
                .where((JobRun.id == run_id) & (JobRun.status == "claimed"))
                .values(
                    status=status,
                    telegram_message_id=message_id,
                    error=error,
                    lease_until=None,
                    finished_at=utc(now),
                )
                .returning(JobRun.job_id)
            )
            if job_id is None:  # already finished (by another worker that took it over)
                return
            counted = ScheduledJob.fire_count + (1 if status == "delivered" else 0)
            await conn.execute(
                update(ScheduledJob)
                .where(ScheduledJob.id == job_id)
                .values(fire_count=counted, last_status=status, last_error=error)
            )
