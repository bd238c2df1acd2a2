"""The daily token limit in the agent: checked before any LLM call, for every frontend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent import Agent, AgentConfig, Turn
from agent.errors import DailyLimitReached
from agent.factory import llm_client
from memory.store import Store
from memory.types import UsageRecord
from omni.settings import Settings
from tests.agent.conftest import FAST_RETRY, OpenAgent
from tests.fakes.llm_api import FakeLLM

pytestmark = pytest.mark.anyio

ANA, BEN, BOSS = 77, 78, 1


def turn(text: str, user_id: int | None, **fields: Any) -> Turn:
    return Turn(session_key=f"cli:{user_id}", text=text, user_id=user_id, **fields)


async def spend(store: Store, user_id: int, tokens: int, at: datetime | None = None) -> None:
    await store.usage.record(UsageRecord("openai/fake-model", tokens, 0, user_id=user_id, created_at=at))


async def messages_of(store: Store, user_id: int) -> int:
    ref = await store.conversations.current(f"cli:{user_id}")
    return len(await store.conversations.messages(ref.session_id))


async def test_a_user_over_the_limit_gets_the_message_and_no_request_reaches_the_llm(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    async with agent_on(usage_daily_tokens=50) as agent:
        assert (await agent.reply(turn("first", ANA))).text == "echo: first"
        assert (await store.usage.totals(ANA)).tokens >= 50  # one answer used the day's tokens
        stored = await messages_of(store, ANA)
        with pytest.raises(DailyLimitReached) as refused:
            await agent.reply(turn("second", ANA))
        assert len(llm.requests) == 1
        assert await messages_of(store, ANA) == stored  # the refused message is not kept either
        text = refused.value.user_message
        assert text.startswith("You've used your 50 tokens for today; the limit resets at 00:00 UTC (in ")
        # Another user, and a turn with no user (`omni chat`), are not held back by Ana's use.
        assert (await agent.reply(turn("hi", BEN))).text == "echo: hi"
        assert (await agent.reply(turn("local", None))).text == "echo: local"
    assert len(llm.requests) == 3


async def test_admins_are_exempt_from_the_default_but_not_from_their_own_limit(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    await spend(store, BOSS, 1_000)
    async with agent_on(usage_daily_tokens=100) as agent:
        assert (await agent.reply(turn("status?", BOSS, is_admin=True))).text == "echo: status?"
        await store.users.set_daily_limit(BOSS, 500)
        with pytest.raises(DailyLimitReached) as refused:
            await agent.reply(turn("again", BOSS, is_admin=True))
        assert refused.value.user_message.startswith("You've used your 500 tokens for today")
        await store.users.set_daily_limit(BOSS, 0)  # /limit off
        assert (await agent.reply(turn("and now?", BOSS, is_admin=True))).text == "echo: and now?"
    assert len(llm.requests) == 2


async def test_a_users_own_limit_applies_without_a_default_and_off_lifts_it(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    await spend(store, ANA, 20)
    await store.users.set_daily_limit(ANA, 10)
    async with agent_on() as agent:  # OMNI_USAGE_DAILY_TOKENS=0: no default limit
        with pytest.raises(DailyLimitReached) as refused:
            await agent.reply(turn("hello", ANA))
        assert refused.value.user_message.startswith("You've used your 10 tokens for today")
        await store.users.set_daily_limit(ANA, None)  # /limit default: the default is none
        assert (await agent.reply(turn("hello", ANA))).text == "echo: hello"
    assert len(llm.requests) == 1


async def test_the_day_is_the_utc_day_and_the_message_says_when_it_resets(
    settings: Settings, llm: FakeLLM, store: Store
) -> None:
    """Yesterday's use (by the agent's clock) does not count; the reset is the next 00:00 UTC."""
    now = datetime(2025, 3, 10, 18, 48, tzinfo=UTC)
    yesterday = now.replace(hour=0, minute=0) - timedelta(minutes=1)  # 23:59 the day before
    await spend(store, ANA, 1_000_000, at=yesterday)
    await spend(store, ANA, 60, at=now.replace(hour=1))
    config = AgentConfig(model="openai/fake-model", daily_tokens=100)
    async with Agent(store, llm_client(settings, FAST_RETRY), config, clock=lambda: now) as agent:
        allowance = await agent.limits.allowance(ANA, is_admin=False)
        assert allowance is not None and (allowance.used, allowance.left) == (60, 40)
        assert allowance.resets_at == datetime(2025, 3, 11, tzinfo=UTC) and not allowance.own
        await agent.reply(turn("one more", ANA))  # 60 < 100: answered, and its tokens count today
        with pytest.raises(DailyLimitReached) as refused:
            await agent.reply(turn("and another", ANA))
    assert refused.value.user_message == (
        "You've used your 100 tokens for today; the limit resets at 00:00 UTC (in 5 h 12 min)."
    )
    assert len(llm.requests) == 1
