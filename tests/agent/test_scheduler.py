"""The scheduler fires each due run once: on time, across DST, after a crash, with two workers.

Time is a :class:`FakeClock` the test moves: the scheduler's sleeps end when the test advances
the clock past them, so a day passes in milliseconds and no test waits for a schedule.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.schedule import Rule, first_run, zone
from agent.scheduler import Scheduler, SchedulerConfig
from bot.workers import gone, worker_name
from memory import Store, open_store
from memory.migrate import upgrade
from memory.schedules import NewJob, Run

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LONG = SchedulerConfig(lease_s=60, grace_s=600, max_wait_s=86_400 * 30, concurrency=4)


class FakeClock:
    """Now is what the test says; a sleep ends when the test moves now past its end."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []
        self.waking = 0  # sleeps ended by advance_to whose sleeper has not resumed yet

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        entry = (self._now + timedelta(seconds=seconds), asyncio.get_running_loop().create_future())
        self._sleepers.append(entry)
        try:
            await entry[1]
            self.waking -= 1
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    @property
    def sleeping(self) -> int:
        return len(self._sleepers)

    @property
    def deadlines(self) -> list[datetime]:
        return [deadline for deadline, _ in self._sleepers]

    def next_wake(self) -> datetime:
        return min(deadline for deadline, _ in self._sleepers)

    def advance_to(self, moment: datetime) -> None:
        self._now = moment
        for entry in list(self._sleepers):
            if entry[0] <= moment:
                self._sleepers.remove(entry)
                entry[1].set_result(None)
                self.waking += 1


async def eventually(condition: Callable[[], bool], what: str = "the scheduler to settle") -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")  # a fresh database at head
        return url
    url = f"sqlite+aiosqlite:///{tmp_path / 'omni.db'}"
    upgrade(url)
    return url


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    async with open_store(db_url) as s:
        yield s


class Deliveries:
    """The bot's side: what was fired, when, by whom; the message id it "sent"."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.fired: list[tuple[int, datetime, datetime, str]] = []  # job, due, fired at, worker
        self.missed: list[Run] = []
        self.hold: asyncio.Event | None = None  # set: fire() waits for it (a delivery under way)

    def fire_as(self, worker: str) -> Callable[[Run], Awaitable[int | None]]:
        async def fire(run: Run) -> int | None:
            if self.hold is not None:
                await self.hold.wait()
            await asyncio.sleep(0)
            self.fired.append((run.job.id, run.due_at, self.clock.now(), worker))
            return 1000 + len(self.fired)

        return fire

    async def report(self, run: Run) -> None:
        self.missed.append(run)


@asynccontextmanager
async def running(scheduler: Scheduler, clock: FakeClock) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(scheduler.run())
    await settle(clock, scheduler)
    try:
        yield task
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def settle(clock: FakeClock, *schedulers: Scheduler) -> None:
    """Until every scheduler sleeps again with nothing firing. Checked twice, 10 ms apart: a
    loop whose sleep just ended still says ``waiting`` until it runs, which it does meanwhile."""

    def idle() -> bool:
        return clock.waking == 0 and all(s.waiting and s.in_flight == 0 for s in schedulers)

    for _ in range(2):
        await eventually(idle)
        await asyncio.sleep(0.01)
    await eventually(idle)


async def add(
    store: Store,
    *,
    user: int = 7,
    at: datetime | None = None,
    cron: str | None = None,
    every: int | None = None,
    tz: str = "Europe/Berlin",
    now: datetime = T0,
) -> int:
    if cron is not None:
        rule = Rule("cron", cron=cron)
    elif every is not None:
        rule = Rule("interval", interval_s=every, start_at=at or now + timedelta(seconds=every))
    else:
        rule = Rule("once", start_at=at)
    due = first_run(rule, zone(tz), now)
    assert due is not None
    job = NewJob(
        user,
        user,
        None,
        f"tg:{user}",
        "reminder",
        "drink water",
        rule.schedule,
        tz,
        due,
        cron=rule.cron,
        interval_s=rule.interval_s,
        start_at=rule.start_at,
    )
    return (await store.schedules.create(job)).id


async def test_a_one_shot_fires_once_at_its_time(store: Store) -> None:
    clock = FakeClock(T0)
    out = Deliveries(clock)
    job = await add(store, at=T0 + timedelta(minutes=10))
    scheduler = Scheduler(store.job_runs, out.fire_as("w1"), owner="w1", clock=clock, config=LONG)
    async with running(scheduler, clock):
        clock.advance_to(T0 + timedelta(minutes=9, seconds=59))
        await settle(clock, scheduler)
        assert out.fired == []
        clock.advance_to(clock.next_wake())
        await settle(clock, scheduler)
        assert out.fired == [(job, T0 + timedelta(minutes=10), T0 + timedelta(minutes=10), "w1")]
        clock.advance_to(T0 + timedelta(days=2))
        await settle(clock, scheduler)
    assert len(out.fired) == 1
    (stored,) = await store.schedules.jobs(7, finished=True)
    assert (stored.state, stored.fire_count, stored.last_status) == ("done", 1, "delivered")


class SlowRound(FakeClock):
    """A round that takes time: each reading of the clock finds it ``step`` later."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        super().__init__(start)
        self.step = step

    def now(self) -> datetime:
        moment = super().now()
        self.advance_to(moment + self.step)
        return moment


async def test_a_job_falling_due_during_a_round_fires_without_waiting_for_a_retry(store: Store) -> None:
    # The round looks at 09:59.9 (nothing due), and by its end the job is due: it must fire
    # at once, not after retry_s as when other workers hold what is due.
    clock = SlowRound(T0 + timedelta(minutes=9, seconds=59, milliseconds=900), timedelta(milliseconds=100))
    out = Deliveries(clock)
    job = await add(store, at=T0 + timedelta(minutes=10))
    scheduler = Scheduler(store.job_runs, out.fire_as("w1"), owner="w1", clock=clock, config=LONG)
    async with running(scheduler, clock):
        await eventually(lambda: len(out.fired) == 1)
    ((fired_job, due, at, _),) = out.fired
    assert fired_job == job and due == T0 + timedelta(minutes=10)
    assert at - due < timedelta(seconds=LONG.retry_s)


async def test_a_new_job_wakes_the_sleeping_scheduler(store: Store) -> None:
    clock = FakeClock(T0)
    out = Deliveries(clock)
    scheduler = Scheduler(store.job_runs, out.fire_as("w1"), owner="w1", clock=clock, config=LONG)
    async with running(scheduler, clock):
        assert clock.next_wake() == T0 + timedelta(seconds=LONG.max_wait_s)  # no job: the longest sleep
        job = await add(store, at=T0 + timedelta(seconds=30))
        scheduler.nudge()
        await eventually(lambda: T0 + timedelta(seconds=30) in clock.deadlines)
        clock.advance_to(T0 + timedelta(seconds=30))
        await settle(clock, scheduler)
    assert [(j, at) for j, _, at, _ in out.fired] == [(job, T0 + timedelta(seconds=30))]


@pytest.mark.parametrize(
    ("cron", "start", "expected"),
    [
        # Summer time starts on Sunday 28 March 2027: 09:00 Berlin is 08:00 UTC, then 07:00.
        (
            "0 9 * * *",
            datetime(2027, 3, 26, 12, tzinfo=UTC),
            ["2027-03-27 08:00", "2027-03-28 07:00", "2027-03-29 07:00"],
        ),
        # It ends on Sunday 31 October: 09:00 is 07:00 UTC, then 08:00.
        (
            "0 9 * * *",
            datetime(2027, 10, 29, 12, tzinfo=UTC),
            ["2027-10-30 07:00", "2027-10-31 08:00", "2027-11-01 08:00"],
        ),
        # 02:30 happens twice on 31 October: once is enough.
        (
            "30 2 * * *",
            datetime(2027, 10, 29, 12, tzinfo=UTC),
            ["2027-10-30 00:30", "2027-10-31 00:30", "2027-11-01 01:30"],
        ),
    ],
)
async def test_cron_fires_at_the_right_utc_instants_across_a_dst_change(
    store: Store, cron: str, start: datetime, expected: list[str]
) -> None:
    clock = FakeClock(start)
    out = Deliveries(clock)
    job = await add(store, cron=cron, now=start)
    scheduler = Scheduler(store.job_runs, out.fire_as("w1"), owner="w1", clock=clock, config=LONG)
    async with running(scheduler, clock):
        while len(out.fired) < len(expected):
            clock.advance_to(clock.next_wake())  # the loop sleeps until each due time
            await settle(clock, scheduler)
    assert [f"{at:%Y-%m-%d %H:%M}" for _, _, at, _ in out.fired] == expected
    assert all(j == job and due == at for j, due, at, _ in out.fired)


async def test_jobs_missed_while_down_fire_within_grace_and_are_reported_after_it(store: Store) -> None:
    clock = FakeClock(T0)
    out = Deliveries(clock)
    recent = await add(store, user=1, at=T0 - timedelta(minutes=15), now=T0 - timedelta(hours=1))
    stale = await add(store, user=2, at=T0 - timedelta(hours=3), now=T0 - timedelta(hours=4))
    daily = await add(store, user=3, cron="0 6 * * *", now=T0 - timedelta(days=3))  # 3 due times passed
    config = SchedulerConfig(lease_s=60, grace_s=1800, max_wait_s=86_400, concurrency=4)
    scheduler = Scheduler(
        store.job_runs, out.fire_as("w1"), owner="w1", clock=clock, config=config, missed=out.report
    )
    async with running(scheduler, clock):
        await settle(clock, scheduler)
    assert [(j, due) for j, due, _, _ in out.fired] == [(recent, T0 - timedelta(minutes=15))]
    assert sorted((r.job.id, r.status) for r in out.missed) == [(stale, "missed"), (daily, "missed")]
    (cron_job,) = await store.schedules.jobs(3)
    assert cron_job.next_run_at == datetime(2026, 12, 2, 5, 0, tzinfo=UTC)  # tomorrow 06:00 CET


async def test_a_restart_between_claim_and_delivery_fires_the_run_again_once(store: Store) -> None:
    clock = FakeClock(T0)
    out = Deliveries(clock)
    out.hold = asyncio.Event()  # the first worker claims, then dies mid-delivery
    job = await add(store, at=T0)
    first = Scheduler(store.job_runs, out.fire_as("a"), owner="a", clock=clock, config=LONG)
    task = asyncio.create_task(first.run())
    await eventually(lambda: first.in_flight == 1, "the first worker to claim the run")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert out.fired == []
    out.hold = None
    second = Scheduler(
        store.job_runs,
        out.fire_as("b"),
        owner="b",
        clock=clock,
        config=LONG,
        gone=lambda claimant: claimant == "a",
    )
    async with running(second, clock):
        await settle(clock, second)
    third = Scheduler(
        store.job_runs,
        out.fire_as("c"),
        owner="c",
        clock=clock,
        config=LONG,
        gone=lambda claimant: claimant in ("a", "b"),
    )
    async with running(third, clock):
        clock.advance_to(T0 + timedelta(minutes=5))
        await settle(clock, third)
    assert [(j, worker) for j, _, _, worker in out.fired] == [(job, "b")]


async def test_a_dead_workers_run_is_taken_over_when_its_lease_runs_out(store: Store) -> None:
    clock = FakeClock(T0)
    out = Deliveries(clock)
    out.hold = asyncio.Event()
    await add(store, at=T0)
    first = Scheduler(store.job_runs, out.fire_as("a"), owner="a", clock=clock, config=LONG)
    task = asyncio.create_task(first.run())
    await eventually(lambda: first.in_flight == 1, "the first worker to claim the run")
    task.cancel()  # on another machine: nobody can tell it is gone, only its lease can
    with pytest.raises(asyncio.CancelledError):
        await task
    out.hold = None
    config = SchedulerConfig(lease_s=60, grace_s=600, max_wait_s=30, concurrency=4)
    second = Scheduler(store.job_runs, out.fire_as("b"), owner="b", clock=clock, config=config)
    async with running(second, clock):
        clock.advance_to(T0 + timedelta(seconds=30))
        await settle(clock, second)
        assert out.fired == []  # the lease holds for 60 s
        clock.advance_to(T0 + timedelta(seconds=61))
        await settle(clock, second)
    assert [worker for _, _, _, worker in out.fired] == ["b"]


async def test_two_schedulers_on_one_postgres_database_fire_each_run_once(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several workers share a PostgreSQL database only")
    clock = FakeClock(T0)
    out = Deliveries(clock)
    config = SchedulerConfig(lease_s=60, grace_s=600, max_wait_s=86_400, concurrency=8)
    async with open_store(db_url) as one, open_store(db_url) as two:
        for user in range(120):  # one-shots, forty at each of three instants
            await add(one, user=user, at=T0 + timedelta(minutes=1 + user % 3))
        for user in range(120, 160):  # recurring every 5 min from T0 + 5 min
            await add(one, user=user, every=300)
        workers = [
            Scheduler(store.job_runs, out.fire_as(name), owner=name, clock=clock, config=config)
            for name, store in (("w1", one), ("w2", two))
        ]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        try:
            await settle(clock, *workers)
            while clock.now() < T0 + timedelta(minutes=20):
                clock.advance_to(clock.next_wake())
                await settle(clock, *workers)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    fired = Counter((job, due) for job, due, _, _ in out.fired)
    assert max(fired.values()) == 1, [k for k, n in fired.items() if n > 1]
    assert len(fired) == 120 + 40 * 4  # each interval job at +5, +10, +15, +20 min
    assert {worker for _, _, _, worker in out.fired} == {"w1", "w2"}


_DOOMED_WORKER = """
import asyncio, sys
from bot.workers import worker_name
from agent.scheduler import Scheduler
from memory import open_store

async def main() -> None:
    async with open_store(sys.argv[1]) as store:
        async def fire(run):
            print("firing", run.job.id, flush=True)
            await asyncio.Event().wait()  # killed here: claimed, never delivered
        await Scheduler(store.job_runs, fire, owner=worker_name()).run()

asyncio.run(main())
"""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_worker_killed_between_claim_and_delivery_is_replaced_at_once(db_url: str) -> None:
    """A real process claims the run and gets SIGKILL; the next start sees its worker is gone
    (bot/workers.py) and fires the run again without waiting for the lease."""
    now = datetime.now(UTC)
    async with open_store(db_url) as store:
        job = await add(store, at=now + timedelta(milliseconds=200), now=now)
    doomed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _DOOMED_WORKER, db_url, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert doomed.stdout is not None
        async with asyncio.timeout(20):
            assert (await doomed.stdout.readline()).decode().split() == ["firing", str(job)]
    finally:
        doomed.kill()  # SIGKILL
        await doomed.wait()
    clock = FakeClock(datetime.now(UTC))
    async with open_store(db_url) as store:
        out = Deliveries(clock)
        config = SchedulerConfig(lease_s=600, grace_s=600, max_wait_s=3600)
        restarted = Scheduler(store.job_runs, out.fire_as("new"), owner=worker_name(), clock=clock,
                              config=config, gone=gone)  # fmt: skip
        async with running(restarted, clock):
            await settle(clock, restarted)
        assert [(j, worker) for j, _, _, worker in out.fired] == [(job, "new")]
        (stored,) = await store.schedules.jobs(7, finished=True)
        assert (stored.fire_count, stored.last_status) == (1, "delivered")
