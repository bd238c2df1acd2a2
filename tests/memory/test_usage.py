"""The usage log's sums: per user and for everyone, over windows; the daily limit's one-statement
read; the top users with their names. On SQLite and PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert, text

from memory.migrate import upgrade
from memory.models import Usage
from memory.store import Store, open_store
from memory.types import DailyUse, UsageRecord, UsageTotals
from memory.usage import usage_values

pytestmark = pytest.mark.anyio

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
ANA, BEN, CID = 11, 22, 33


def at(hours_ago: float, user_id: int | None, prompt: int, completion: int, cost: float = 0.0) -> UsageRecord:
    return UsageRecord(
        "openai/gpt-4o-mini",
        prompt,
        completion,
        cost=cost,
        user_id=user_id,
        created_at=NOW - timedelta(hours=hours_ago),
    )


async def seed(store: Store) -> None:
    for record in [
        at(1, ANA, 100, 10, 0.001),
        at(23, ANA, 200, 20, 0.002),
        at(25, ANA, 400, 40, 0.004),  # outside 24 h, inside 30 days
        at(24 * 29, ANA, 800, 80, 0.008),
        at(24 * 31, ANA, 1600, 160, 0.016),  # outside 30 days
        at(2, BEN, 1000, 1000, 0.05),
        at(24 * 40, BEN, 9000, 9000, 0.9),  # BEN's big month is long gone
        at(3, None, 5, 5),  # a call without a user (`omni chat`)
    ]:
        await store.usage.record(record)


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    """For what only SQLite can show: VM steps and its query plans."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'omni.db'}"
    await asyncio.to_thread(upgrade, url)
    async with open_store(url) as opened:
        yield opened


async def test_one_users_totals_over_24_hours_and_30_days(store: Store) -> None:
    await seed(store)
    day = await store.usage.totals(ANA, since=NOW - timedelta(days=1))
    month = await store.usage.totals(ANA, since=NOW - timedelta(days=30))
    assert day == UsageTotals(2, 300, 30, pytest.approx(0.003))
    assert (month.calls, month.prompt_tokens, month.completion_tokens) == (4, 1500, 150)
    assert month.tokens == 1650 and month.cost == pytest.approx(0.015)
    assert (await store.usage.totals(ANA)).calls == 5  # no window: every call
    assert await store.usage.totals(CID, since=NOW - timedelta(days=30)) == UsageTotals()


async def test_everyones_totals_include_calls_without_a_user(store: Store) -> None:
    await seed(store)
    day = await store.usage.totals(since=NOW - timedelta(days=1))
    assert (day.calls, day.prompt_tokens, day.completion_tokens) == (4, 1305, 1035)
    month = await store.usage.totals(since=NOW - timedelta(days=30))
    assert (month.calls, month.tokens) == (6, 1650 + 2000 + 10)


async def test_a_naive_moment_is_taken_as_utc(store: Store) -> None:
    await seed(store)
    since = NOW - timedelta(hours=24)
    assert await store.usage.totals(ANA, since=since.replace(tzinfo=None)) == await store.usage.totals(
        ANA, since=since
    )
    elsewhere = since.astimezone(timezone(timedelta(hours=5)))  # the same moment, another zone
    assert (await store.usage.totals(ANA, since=elsewhere)).calls == 2


async def test_top_users_rank_by_tokens_with_their_names(store: Store) -> None:
    await seed(store)
    await store.users.touch(ANA, display_name="Ana <b>&", username="ana", is_admin=False)
    top = await store.usage.top_users(since=NOW - timedelta(days=30))
    assert [u.user_id for u in top] == [BEN, ANA]  # BEN: 2,000 tokens; ANA: 1,650; no user: left out
    ben, ana = top
    assert (ben.display_name, ben.username) == (None, None)  # never seen by the gate: no name
    assert (ana.display_name, ana.username) == ("Ana <b>&", "ana")
    assert (ana.totals.calls, ana.totals.tokens) == (4, 1650)
    assert ben.totals.cost == pytest.approx(0.05)
    assert [u.user_id for u in await store.usage.top_users(since=NOW - timedelta(days=30), limit=1)] == [BEN]
    # Over 24 h, ANA's two calls (330 tokens) rank below BEN's one (2,000).
    day = await store.usage.top_users(since=NOW - timedelta(days=1))
    assert [(u.user_id, u.totals.tokens) for u in day] == [(BEN, 2000), (ANA, 330)]
    assert await store.usage.top_users(since=NOW + timedelta(days=1)) == []


async def test_daily_use_reads_the_users_own_limit_and_their_use_since_a_moment(store: Store) -> None:
    await seed(store)
    midnight = NOW.replace(hour=0)
    use = await store.usage.daily_use(ANA, since=midnight)
    assert (use.own_limit, use.used) == (None, 110)  # 23 h ago was yesterday
    await store.users.set_daily_limit(ANA, 5_000)
    assert (await store.usage.daily_use(ANA, since=midnight)).own_limit == 5_000
    await store.users.set_daily_limit(ANA, 0)  # "off"
    assert (await store.usage.daily_use(ANA, since=midnight)).own_limit == 0
    record = await store.users.set_daily_limit(ANA, None)  # "default"
    assert record.daily_token_limit is None
    assert await store.usage.daily_use(CID, since=midnight) == DailyUse(None, 0)  # unknown user


async def test_a_limit_set_before_the_user_is_seen_survives_their_first_message(store: Store) -> None:
    await store.users.set_daily_limit(CID, 1_234)
    touched = await store.users.touch(CID, display_name="Cid", username=None, is_admin=False)
    assert touched.daily_token_limit == 1_234 and touched.display_name == "Cid"
    assert (await store.users.get(CID)) == touched


async def test_daily_check_costs_the_same_however_many_rows_others_and_the_past_hold(
    sqlite_store: Store,
) -> None:
    """Counted in SQLite VM steps (deterministic, unlike time): the check before every turn
    reads today's rows of one user, not months of everyone's."""
    store = sqlite_store
    midnight = NOW.replace(hour=0)

    async def bulk(records: list[UsageRecord]) -> None:
        async with store.db.transaction() as conn:
            await conn.execute(insert(Usage), [usage_values(r) for r in records])

    async def steps() -> int:
        counted = [0]

        def tick() -> int:
            counted[0] += 1
            return 0  # 0: go on

        async with store.db.connection() as conn:
            (await conn.driver_connection()).set_progress_handler(tick, 10)
        try:
            await store.usage.daily_use(ANA, since=midnight)
        finally:
            async with store.db.connection() as conn:
                (await conn.driver_connection()).set_progress_handler(None, 10)
        return counted[0]

    await bulk([at(h / 10, ANA, 10, 1) for h in range(20)])  # a busy morning: 20 calls
    before = await steps()
    others = [at(h / 100, user, 10, 1) for user in range(100, 150) for h in range(40)]
    past = [at(24 + h, ANA, 10, 1) for h in range(2_000)]  # ~three months of ANA's calls
    await bulk(others + past)
    assert await steps() < 1.5 * before


async def test_everyones_totals_read_recent_rows_through_the_created_at_index(sqlite_store: Store) -> None:
    async with sqlite_store.db.connection() as conn:
        plan = await conn.execute(
            text(
                "EXPLAIN QUERY PLAN SELECT count(*), sum(prompt_tokens), sum(completion_tokens), "
                "sum(cost) FROM usage WHERE created_at >= :since"
            ),
            {"since": "2025-03-01"},
        )
        details = " ".join(str(row[-1]) for row in plan)
    assert "ix_usage_created_at" in details
