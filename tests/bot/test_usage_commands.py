"""/usage, /limit and /status's usage part through the real bot (in-process, fake Bot API and LLM)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.admin import LIMIT_USAGE, NOT_ADMIN
from memory.store import Store, open_store
from memory.types import UsageRecord
from omni.settings import Settings
from tests.bot.conftest import ADMIN, FRIEND, db_path, in_process_bot, query
from tests.bot.test_memory_commands import say, shown
from tests.fakes.llm_api import FakeLLM
from tests.fakes.telegram_api import FakeTelegram

pytestmark = pytest.mark.anyio

OTHER = 3003


@asynccontextmanager
async def bot_and_store(
    make_settings: Callable[..., Settings], **overrides: Any
) -> AsyncIterator[tuple[FakeTelegram, FakeLLM, Store, Settings]]:
    """The bot in-process, and a second Store on its database to seed and inspect usage."""
    async with (
        in_process_bot(make_settings, allowed_ids=f"{FRIEND},{OTHER}", **overrides) as (tg, llm, settings),
        open_store(settings.database_url) as store,
    ):
        yield tg, llm, store, settings


async def spend(
    store: Store, user_id: int | None, tokens: int, days_ago: float = 0, cost: float = 0.0
) -> None:
    at = datetime.now(UTC) - timedelta(days=days_ago)
    await store.usage.record(
        UsageRecord("openai/gpt-4o-mini", tokens, tokens // 10, cost=cost, user_id=user_id, created_at=at)
    )


async def own_limit(store: Store, user_id: int) -> int | None:
    record = await store.users.get(user_id)
    return None if record is None else record.daily_token_limit


async def test_usage_shows_24_hours_30_days_and_todays_limit(make_settings: Callable[..., Settings]) -> None:
    async with bot_and_store(make_settings, usage_daily_tokens=100_000) as (tg, llm, store, settings):
        assert (await say(tg, FRIEND, "hello")).text == "echo: hello"
        [(prompt, completion)] = query(
            db_path(settings), "SELECT prompt_tokens, completion_tokens FROM usage WHERE user_id = ?", FRIEND
        )
        await spend(store, FRIEND, 1_000, days_ago=10)  # in the month, not the day
        await spend(store, FRIEND, 50_000, days_ago=45)  # too old for either
        await spend(store, OTHER, 7_000)  # someone else's

        text = shown(await say(tg, FRIEND, "/usage"))
        lines = text.splitlines()
        assert lines[0] == "Your usage"
        assert lines[1] == (
            f"Last 24 h: 1 call, {prompt + completion:,} tokens ({prompt:,} in, {completion:,} out), $0"
        )
        month = prompt + completion + 1_100
        assert lines[2] == (
            f"Last 30 days: 2 calls, {month:,} tokens ({prompt + 1_000:,} in, {completion + 100:,} out), $0"
        )
        assert lines[3].startswith(
            f"Today: {prompt + completion:,} of 100,000 tokens (0%); resets at 00:00 UTC"
        )

        # The admin has used nothing, and is exempt from the default limit: no "Today" line.
        text = shown(await say(tg, ADMIN, "/usage"))
        assert text.splitlines()[1:] == ["Last 24 h: no model calls", "Last 30 days: no model calls"]
    assert len(llm.requests) == 1  # the commands never reached the LLM


async def test_limit_is_for_admins_and_holds_a_user_to_their_tokens(
    make_settings: Callable[..., Settings],
) -> None:
    async with bot_and_store(make_settings) as (tg, llm, store, _):
        assert (await say(tg, FRIEND, f"/limit {FRIEND} off")).text == NOT_ADMIN
        assert await own_limit(store, FRIEND) is None
        assert "/limit" not in shown(await say(tg, FRIEND, "/help"))
        assert "/limit &lt;user_id&gt;" in (await say(tg, ADMIN, "/help")).text

        set_text = shown(await say(tg, ADMIN, f"/limit {FRIEND} 5"))
        assert set_text == f"Ana {FRIEND} now has 5 tokens a day (their own); 0 used today."
        assert (await say(tg, FRIEND, "first")).text == "echo: first"  # 0 of 5 used: answered
        refusal = (await say(tg, FRIEND, "second")).text
        assert refusal.startswith("You've used your 5 tokens for today; the limit resets at 00:00 UTC (in ")
        assert len(llm.requests) == 1

        shown_limit = shown(await say(tg, ADMIN, f"/limit {FRIEND}"))
        assert shown_limit.startswith(f"Ana {FRIEND} has 5 tokens a day (their own); ")
        assert shown(await say(tg, ADMIN, f"/limit {FRIEND} off")) == (
            f"Ana {FRIEND} now has no daily limit (set with /limit)."
        )
        assert (await say(tg, FRIEND, "third")).text == "echo: third"
        assert shown(await say(tg, ADMIN, f"/limit {FRIEND} default")) == (
            f"Ana {FRIEND} now has no daily limit (OMNI_USAGE_DAILY_TOKENS is 0)."
        )
        assert shown(await say(tg, ADMIN, f"/limit {FRIEND} 1,500")).startswith(
            f"Ana {FRIEND} now has 1,500 tokens a day (their own)"
        )

        huge = "9" * 4000  # a Telegram message holds at most 4096 characters
        bad_ones = ["/limit", "/limit ana 5", f"/limit {FRIEND} lots", f"/limit {FRIEND} 5 6", "/limit -5 5"]
        for bad in [*bad_ones, f"/limit {FRIEND} {huge}", f"/limit {huge} 5"]:
            assert (await say(tg, ADMIN, bad)).text == LIMIT_USAGE, bad
        assert "off" in (await say(tg, ADMIN, f"/limit {FRIEND} 0")).text
        assert "more than" in (await say(tg, ADMIN, f"/limit {FRIEND} 99999999999")).text
        assert await own_limit(store, FRIEND) == 1_500
        # A user the bot has not seen yet can be limited ahead of their first message.
        assert (
            shown(await say(tg, ADMIN, "/limit 4004 300"))
            == "4004 now has 300 tokens a day (their own); 0 used today."
        )
    assert len(llm.requests) == 2


async def test_status_shows_everyones_totals_and_the_top_users(
    make_settings: Callable[..., Settings],
) -> None:
    async with bot_and_store(make_settings, usage_daily_tokens=50_000) as (tg, llm, store, _):
        await store.users.touch(FRIEND, display_name="Ana <b>&amp;", username="ana_b", is_admin=False)
        await store.users.touch(OTHER, display_name="Bob " + "x" * 250, username=None, is_admin=False)
        await spend(store, FRIEND, 1_000, cost=0.0123)
        await spend(store, OTHER, 5_000, days_ago=3)
        await spend(store, 4004, 20_000, days_ago=40)  # a big user, but not in the last 30 days
        await spend(store, None, 100)  # `omni chat`: counted in totals, not a top user
        for user_id in range(5000, 5005):  # more users than the top five
            await spend(store, user_id, 10 + user_id - 5000, days_ago=20)

        sent = await say(tg, ADMIN, "/status")
        assert sent.parse_mode == "HTML"
        text = shown(sent)  # valid HTML that fits one message
        lines = text.splitlines()
        assert "uptime" in text and "model: openai/fake-model" in text
        assert "24 h: 2 calls, 1,210 tokens (1,100 in, 110 out), $0.0123" in lines
        assert "30 d: 8 calls, 6,775 tokens (6,160 in, 615 out), $0.0123" in lines
        assert "daily limit: 50,000 tokens per user (admins exempt); /limit sets one user's" in lines
        top = lines[lines.index("Top users, 30 d") + 1 :]
        assert top[0].startswith("1. Bob xxx") and top[0].endswith(f"x… {OTHER}: 5,500 tokens, 1 call, $0")
        assert top[1] == f"2. Ana <b>&amp; @ana_b {FRIEND}: 1,100 tokens, 1 call, $0.0123"
        assert top[2:] == [f"{rank}. {5007 - rank}: {18 - rank} tokens, 1 call, $0" for rank in (3, 4, 5)]
        assert len(top) == 5
    assert llm.requests == []
