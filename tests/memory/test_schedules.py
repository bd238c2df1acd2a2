"""Scheduled jobs in the store: owned by one user, each due time claimed and fired once."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import update

from memory import Store
from memory.errors import JobLimitReached
from memory.migrate import HEAD_REVISION, alembic_config, read_state, upgrade
from memory.models import ScheduledJob
from memory.schedules import Job, NewJob

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def hourly(job: Job, after: datetime) -> datetime | None:
    """A stand-in for agent/schedule.py: every hour on the hour."""
    return after.replace(minute=0, second=0, microsecond=0) + HOUR


def new_job(user: int = 7, *, at: datetime = T0, schedule: str = "once", text: str = "stretch") -> NewJob:
    return NewJob(
        user_id=user,
        chat_id=user,
        thread_id=None,
        session_key=f"tg:{user}",
        kind="reminder",
        text=text,
        schedule=schedule,  # type: ignore[arg-type]
        timezone="Europe/Berlin",
        next_run_at=at,
        cron="0 * * * *" if schedule == "cron" else None,
        start_at=at if schedule == "once" else None,
    )


async def claim(store: Store, now: datetime, owner: str = "w1", grace_s: float = 600):
    return await store.job_runs.claim_due(now, owner, next_run=hourly, lease_s=60, grace_s=grace_s)


async def test_a_user_sees_and_changes_only_their_own_jobs(store: Store) -> None:
    jobs = store.schedules
    mine = await jobs.create(new_job(7, text="water the plants"))
    theirs = await jobs.create(new_job(8, text="call mum"))
    assert mine.next_run_at == T0 and mine.state == "active" and mine.timezone == "Europe/Berlin"
    assert [j.text for j in await jobs.jobs(7)] == ["water the plants"]
    assert await jobs.get(7, theirs.id) is None
    assert await jobs.pause(7, theirs.id) is None
    assert await jobs.cancel(7, theirs.id) is None
    assert (await jobs.get(8, theirs.id)).state == "active"  # type: ignore[union-attr]
    paused = await jobs.pause(7, mine.id)
    assert paused is not None and paused.state == "paused"
    assert await jobs.pause(7, mine.id) is None  # already paused
    resumed = await jobs.resume(7, mine.id, T0 + HOUR)
    assert resumed is not None and resumed.state == "active" and resumed.next_run_at == T0 + HOUR
    cancelled = await jobs.cancel(7, mine.id)
    assert cancelled is not None and cancelled.state == "cancelled" and cancelled.next_run_at is None
    assert await jobs.jobs(7) == [] and [j.id for j in await jobs.jobs(7, finished=True)] == [mine.id]
    totals = await jobs.totals()
    assert (totals.active, totals.paused, totals.users) == (1, 0, 1)


async def test_a_user_may_hold_only_so_many_open_jobs(store: Store) -> None:
    jobs = store.schedules
    first = await jobs.create(new_job(), max_jobs=2)
    await jobs.create(new_job(), max_jobs=2)
    with pytest.raises(JobLimitReached) as refused:
        await jobs.create(new_job(), max_jobs=2)
    assert refused.value.user_message == "You already have 2 scheduled jobs; cancel one first."
    assert await jobs.count(7) == 2
    await jobs.cancel(7, first.id)
    await jobs.create(new_job(), max_jobs=2)  # a cancelled job no longer counts
    await jobs.create(new_job(8), max_jobs=2)  # nor do another user's


async def test_creates_at_the_same_moment_never_go_over_the_limit(store: Store) -> None:
    # The model may call the tool several times in one step: the creates run side by side.
    results = await asyncio.gather(
        *(store.schedules.create(new_job(), max_jobs=3) for _ in range(10)), return_exceptions=True
    )
    assert sum(isinstance(r, JobLimitReached) for r in results) == 7
    assert await store.schedules.count(7) == 3


async def test_a_one_shot_is_claimed_once_and_delivered(store: Store) -> None:
    jobs, runs = store.schedules, store.job_runs
    job = await jobs.create(new_job(at=T0))
    assert (await claim(store, T0 - timedelta(seconds=1))).fire == []  # not due yet
    assert await runs.next_due() == T0
    claimed = await claim(store, T0 + timedelta(seconds=2))
    assert [(r.job.id, r.due_at, r.status) for r in claimed.fire] == [(job.id, T0, "claimed")]
    assert (await claim(store, T0 + timedelta(seconds=3), owner="w2")).fire == []
    done = await jobs.get(7, job.id)
    assert done is not None and done.state == "done" and done.next_run_at is None
    assert await runs.next_due() is None
    await runs.delivered(claimed.fire[0].id, 4242, T0 + timedelta(seconds=3))
    assert await runs.run_status(claimed.fire[0].id) == "delivered"
    after = await jobs.get(7, job.id)
    assert after is not None and after.fire_count == 1 and after.last_status == "delivered"


async def test_a_recurring_job_fires_once_however_late_and_skips_what_it_missed(store: Store) -> None:
    jobs, runs = store.schedules, store.job_runs
    job = await jobs.create(new_job(at=T0, schedule="cron"))
    late = T0 + timedelta(minutes=5)  # within grace: fired once, next run is the next hour
    claimed = await claim(store, late)
    assert [r.due_at for r in claimed.fire] == [T0]
    assert (await jobs.get(7, job.id)).next_run_at == T0 + HOUR  # type: ignore[union-attr]
    await runs.failed(claimed.fire[0].id, "Forbidden: bot was blocked by the user", late)
    failed = await jobs.get(7, job.id)
    assert failed is not None and failed.last_status == "failed" and failed.fire_count == 0
    down_until = T0 + 5 * HOUR + timedelta(minutes=30)  # four due times passed while down
    claimed = await claim(store, down_until)
    assert claimed.fire == [] and [(r.due_at, r.status) for r in claimed.missed] == [(T0 + HOUR, "missed")]
    assert (await jobs.get(7, job.id)).next_run_at == T0 + 6 * HOUR  # type: ignore[union-attr]
    assert (await claim(store, down_until)).missed == []  # reported once


async def test_a_one_shot_found_past_the_grace_period_is_missed_not_fired(store: Store) -> None:
    jobs, runs = store.schedules, store.job_runs
    job = await jobs.create(new_job(at=T0))
    claimed = await claim(store, T0 + timedelta(minutes=11), grace_s=600)
    assert claimed.fire == [] and [r.job.id for r in claimed.missed] == [job.id]
    assert (await jobs.get(7, job.id)).state == "missed"  # type: ignore[union-attr]
    assert await runs.run_status(claimed.missed[0].id) == "missed"


async def test_a_due_time_already_fired_is_not_fired_again(store: Store) -> None:
    """Should a job's row point at a due time whose run exists (two workers meeting despite the
    row lock), the unique (job, due) lets nobody fire it twice: the job only moves on."""
    jobs = store.schedules
    job = await jobs.create(new_job(at=T0, schedule="cron"))
    first = await claim(store, T0)
    async with store.db.transaction() as conn:  # put the job back on the due time it just fired
        await conn.execute(update(ScheduledJob).where(ScheduledJob.id == job.id).values(next_run_at=T0))
    again = await claim(store, T0 + timedelta(seconds=1), owner="w2")
    assert len(first.fire) == 1 and again.fire == [] and again.missed == []
    assert (await jobs.get(7, job.id)).next_run_at == T0 + HOUR  # type: ignore[union-attr]


async def test_runs_of_a_dead_worker_are_taken_over_once(store: Store) -> None:
    jobs, runs = store.schedules, store.job_runs
    for user in (1, 2, 3):
        await jobs.create(new_job(user, at=T0))
    claimed = await claim(store, T0, owner="dead")
    assert len(claimed.fire) == 3
    kw = {"lease_s": 60.0, "grace_s": 600.0}
    live = await runs.reclaim(T0 + timedelta(seconds=30), "w2", gone=lambda c: False, **kw)
    assert live.fire == []  # its lease still holds and nobody says it is gone
    renewed_at = T0 + timedelta(seconds=50)
    assert await runs.renew("dead", renewed_at, 60) == 3
    gone_now = await runs.reclaim(T0 + timedelta(seconds=70), "w2", gone=lambda c: c == "dead", **kw)
    assert sorted(r.job.user_id for r in gone_now.fire) == [1, 2, 3]
    assert {r.attempt for r in gone_now.fire} == {2}
    assert (await runs.reclaim(T0 + timedelta(seconds=71), "w3", gone=lambda c: c == "dead", **kw)).fire == []
    await runs.delivered(gone_now.fire[0].id, 1, T0 + timedelta(seconds=72))
    # w2 dies too; by then one run is past the grace period, one has been tried too often.
    later = await runs.reclaim(T0 + timedelta(minutes=11), "w3", gone=lambda c: c == "w2", **kw)
    assert later.fire == [] and {r.status for r in later.missed} == {"missed"} and len(later.missed) == 2
    for run in gone_now.fire[1:]:
        assert await runs.run_status(run.id) == "missed"


async def test_a_run_that_keeps_killing_its_worker_is_given_up(store: Store) -> None:
    jobs, runs = store.schedules, store.job_runs
    await jobs.create(new_job(at=T0))
    (run,) = (await claim(store, T0, owner="w0")).fire
    owner, now = "w0", T0
    for attempt in (2, 3):
        now += timedelta(seconds=1)
        taken = await runs.reclaim(
            now, f"w{attempt}", gone=lambda c, o=owner: c == o, lease_s=60, grace_s=600
        )
        assert [r.attempt for r in taken.fire] == [attempt]
        owner = f"w{attempt}"
    given_up = await runs.reclaim(now, "w9", gone=lambda c: c == owner, lease_s=60, grace_s=600)
    assert given_up.fire == [] and [r.status for r in given_up.missed] == ["failed"]
    assert await runs.run_status(run.id) == "failed"


async def test_finished_runs_are_pruned_and_claimed_ones_kept(store: Store) -> None:
    jobs, runs = store.schedules, store.job_runs
    for user in (1, 2):
        await jobs.create(new_job(user, at=T0))
    delivered, in_flight = (await claim(store, T0)).fire
    await runs.delivered(delivered.id, 1, T0 + timedelta(seconds=1))
    assert await runs.prune(T0 + timedelta(seconds=1)) == 0  # finished at, not before
    assert await runs.prune(T0 + timedelta(days=8)) == 1
    assert await runs.run_status(delivered.id) is None
    assert await runs.run_status(in_flight.id) == "claimed"


async def test_each_user_has_a_time_zone(store: Store) -> None:
    jobs = store.schedules
    assert await jobs.timezone(7) is None
    await jobs.set_timezone(7, "Europe/Berlin")
    assert await jobs.timezone(7) == "Europe/Berlin"
    await jobs.set_timezone(7, "Asia/Tokyo")
    assert await jobs.timezone(7) == "Asia/Tokyo"
    await store.users.touch(
        7, display_name="Ana", username="ana", is_admin=False
    )  # the gate's upsert of a user keeps their zone
    assert await jobs.timezone(7) == "Asia/Tokyo"
    assert (await store.users.get(7)).display_name == "Ana"  # type: ignore[union-attr]


async def test_scheduled_jobs_migration_downgrades_and_upgrades_again(db_url: str) -> None:
    await asyncio.to_thread(upgrade, db_url)
    config = alembic_config(db_url)
    await asyncio.to_thread(command.downgrade, config, "0006_owner_search_index")  # type: ignore[arg-type]
    state = await asyncio.to_thread(read_state, db_url)
    assert state.revision == "0006_owner_search_index"
    assert not {"scheduled_jobs", "job_runs"} & state.tables
    assert await asyncio.to_thread(upgrade, db_url) == HEAD_REVISION
    assert {"scheduled_jobs", "job_runs"} <= (await asyncio.to_thread(read_state, db_url)).tables


@pytest.mark.sqlite_only
async def test_due_jobs_are_found_through_the_partial_index(store: Store, tmp_path: Path) -> None:
    for user in range(50):
        await store.schedules.create(new_job(user, at=T0 + timedelta(minutes=user)))
    with sqlite3.connect(tmp_path / "data" / "omni.db") as conn:
        due = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM scheduled_jobs WHERE state = 'active' "
                "AND next_run_at <= ? ORDER BY next_run_at LIMIT 100",
                ("2026-12-01 10:00:00",),
            )
        )
        soonest = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT min(next_run_at) FROM scheduled_jobs WHERE state = 'active'"
            )
        )
    assert "ix_scheduled_jobs_due" in due and "TEMP B-TREE" not in due
    assert "ix_scheduled_jobs_due" in soonest
