"""The scheduler: fires reminders and scheduled tasks when they fall due, once each.

One :class:`Scheduler` runs in each process that delivers jobs (``omni bot``). It sleeps until
the soonest job is due (at most ``max_wait_s``, and no longer once :meth:`Scheduler.nudge` says
a job was created), claims the due runs (memory/job_runs.py: one transaction per job, so of
several workers on one PostgreSQL database one claims each), and fires each in a task of its
own through ``fire``, the frontend's callback (a reminder sends its text, a task runs the agent
and sends the answer), which returns the Telegram message id it sent. The outcome is recorded
after delivery: a worker killed in between leaves a claimed run, which the next start (or
another worker, once the lease runs out) fires again — once, unless it is past the grace period.

While runs are being fired their leases are renewed every third of ``lease_s``. Runs found too
late, or given up after killing their worker too often, go to ``missed`` so the user hears of
them. Time comes from a :class:`Clock`, so tests move it by hand instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from agent.schedule import Rule, ScheduleError, next_after, zone
from memory.job_runs import JobRuns
from memory.schedules import Claimed, Job, Run

log = logging.getLogger(__name__)

Fire = Callable[[Run], Awaitable[int | None]]
ReportMissed = Callable[[Run], Awaitable[None]]


class Clock(Protocol):
    def now(self) -> datetime:
        """The time now, aware."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    lease_s: float = 60.0  # a claimed run's lease; renewed every third of it while firing
    grace_s: float = 600.0  # a run later than this is reported missed, not fired
    max_wait_s: float = 60.0  # the longest sleep: how soon another worker's dead runs are seen
    concurrency: int = 4  # runs fired at once (a task runs the agent: minutes, maybe)
    max_attempts: int = 3  # takeovers of a run before it is given up
    retry_s: float = 5.0  # after the database failed, or due jobs another worker holds
    keep_runs_s: float = 7 * 86_400  # finished runs are kept this long (what /jobs may show)
    prune_every_s: float = 3_600


def rule_of(job: Job) -> Rule:
    return Rule(job.schedule, cron=job.cron, interval_s=job.interval_s, start_at=job.start_at)


def next_run(job: Job, after: datetime) -> datetime | None:
    """A stored job's next due time after ``after`` (the store's ``next_run``)."""
    try:
        return next_after(rule_of(job), zone(job.timezone), after)
    except ScheduleError:  # a zone the system's tz database no longer knows: the job ends
        log.warning("job %s: unknown time zone %r; it will not fire again", job.id, job.timezone)
        return None


class Scheduler:
    """Run :meth:`run` as a task for the process's life; cancel it to stop."""

    def __init__(
        self,
        runs: JobRuns,
        fire: Fire,
        *,
        owner: str,
        clock: Clock | None = None,
        config: SchedulerConfig | None = None,
        missed: ReportMissed | None = None,
        gone: Callable[[str], bool] = lambda _claimant: False,
    ) -> None:
        self._store = runs
        self._fire = fire
        self._owner = owner
        self._clock = clock or SystemClock()
        self._config = config or SchedulerConfig()
        self._missed = missed
        self._gone = gone  # whether another worker's name is known dead (bot/workers.py:gone)
        self._wake = asyncio.Event()
        self._busy = asyncio.Event()  # set while runs are in flight: the lease renewer works then
        self._in_flight: set[int] = set()
        self._firing: dict[int, tuple[Run, asyncio.Task[None]]] = {}  # job id -> its run in flight
        self._stopped: set[int] = set()  # run ids cancelled by stop(), not by shutdown
        self._tasks: asyncio.TaskGroup | None = None
        self._waiting = False
        self._pruned_at: datetime | None = None

    @property
    def in_flight(self) -> int:
        """Runs being fired now."""
        return len(self._in_flight)

    @property
    def waiting(self) -> bool:
        """Whether the loop is asleep until the next due time (or a nudge)."""
        return self._waiting

    async def stop(self, job_id: int, within: float = 5.0) -> bool:
        """Cancel the run of ``job_id`` this process is firing (a task or background job the
        user stopped); False when none is. The run is recorded as failed, never fired again;
        this waits (up to ``within`` s) until it is, so a listing made next no longer shows it."""
        firing = self._firing.get(job_id)
        if firing is None or firing[1].done():
            return False
        run, task = firing
        self._stopped.add(run.id)
        task.cancel()
        await asyncio.wait({task}, timeout=within)
        return True

    def nudge(self) -> None:
        """Look again now: a job was created (or resumed) that may be due before the sleep ends."""
        self._wake.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            tasks.create_task(self._renew_leases())
            while True:
                self._wake.clear()  # before looking: a nudge from here on wakes the next wait
                try:
                    delay = await self._tick()
                except Exception:  # the database is away: log, wait, look again (a supervisor)
                    log.exception("scheduler: could not read the due jobs; retrying")
                    delay = self._config.retry_s
                if delay > 0:
                    await self._sleep_or_wake(delay)

    async def _tick(self) -> float:
        """Claim and start what is due; how long to sleep before looking again."""
        config, now = self._config, self._clock.now()
        if self._pruned_at is None or (now - self._pruned_at).total_seconds() >= config.prune_every_s:
            self._pruned_at = now
            pruned = await self._store.prune(now - timedelta(seconds=config.keep_runs_s))
            if pruned:
                log.info("scheduler: deleted %d finished runs", pruned)
        self._start(
            await self._store.reclaim(
                now,
                self._owner,
                gone=self._gone,
                lease_s=config.lease_s,
                grace_s=config.grace_s,
                max_attempts=config.max_attempts,
            )
        )
        free = config.concurrency - len(self._in_flight)
        claimed = Claimed()
        if free > 0:
            claimed = await self._store.claim_due(
                now,
                self._owner,
                next_run=next_run,
                lease_s=config.lease_s,
                grace_s=config.grace_s,
                limit=free,
            )
            self._start(claimed)
        if len(self._in_flight) >= config.concurrency:
            return config.max_wait_s  # a finishing run wakes the loop
        due = await self._store.next_due()
        if due is None:
            return config.max_wait_s
        if due <= now and not (claimed.fire or claimed.missed):
            return config.retry_s  # due when this round looked, yet not claimed: others hold it
        # Due since this round looked (or more of what it took): go on at once.
        wait = (due - self._clock.now()).total_seconds()
        return min(max(wait, 0.0), config.max_wait_s)

    def _start(self, claimed: Claimed) -> None:
        assert self._tasks is not None
        for run in claimed.fire:
            self._in_flight.add(run.id)
            self._busy.set()
            self._firing[run.job.id] = (run, self._tasks.create_task(self._fire_one(run)))
        for run in claimed.missed:
            self._tasks.create_task(self._report(run))

    async def _fire_one(self, run: Run) -> None:
        try:
            message_id = await self._fire(run)
        except asyncio.CancelledError:
            if run.id not in self._stopped:
                raise  # shutting down: the run stays claimed, fired again at the next start
            await self._record(self._store.failed(run.id, "stopped by the user", self._clock.now()))
        except Exception as exc:  # a supervisor: the failure is the run's, not the loop's
            log.warning("job %s (due %s) failed: %r", run.job.id, run.due_at.isoformat(), exc)
            await self._record(
                self._store.failed(run.id, f"{exc.__class__.__name__}: {exc}", self._clock.now())
            )
        else:
            await self._record(self._store.delivered(run.id, message_id, self._clock.now()))
        finally:
            self._stopped.discard(run.id)
            if self._firing.get(run.job.id, (None,))[0] is run:
                del self._firing[run.job.id]
            self._in_flight.discard(run.id)
            if not self._in_flight:
                self._busy.clear()
            self._wake.set()

    async def _record(self, outcome: Awaitable[None]) -> None:
        try:
            await outcome
        except Exception:  # the run stays claimed: its lease runs out and it is fired again
            log.exception("scheduler: could not record a run's outcome")

    async def _report(self, run: Run) -> None:
        log.info("job %s: run due %s %s", run.job.id, run.due_at.isoformat(), run.status)
        if self._missed is None:
            return
        try:
            await self._missed(run)
        except Exception:  # telling the user is best effort; the run is already recorded
            log.exception("scheduler: could not report a missed run of job %s", run.job.id)

    async def _renew_leases(self) -> None:
        while True:
            await self._busy.wait()  # idle, it does not wake at all
            await self._clock.sleep(self._config.lease_s / 3)
            if not self._in_flight:
                continue
            try:
                await self._store.renew(self._owner, self._clock.now(), self._config.lease_s)
            except Exception:  # the next round tries again; the lease has two more thirds
                log.exception("scheduler: could not renew leases")

    async def _sleep_or_wake(self, seconds: float) -> None:
        sleeping = asyncio.ensure_future(self._clock.sleep(seconds))
        woken = asyncio.ensure_future(self._wake.wait())
        self._waiting = True
        try:
            await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._waiting = False
            for waiter in (sleeping, woken):
                waiter.cancel()
            await asyncio.gather(sleeping, woken, return_exceptions=True)
