"""Agent.reply against the fake LLM over HTTP and a real migrated SQLite file."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from agent import Progress, Turn
from agent.errors import ContextTooLong, LLMRejected, LLMUnavailable
from agent.loop import NO_TOOLS_ANSWER, ToolProvider
from agent.mcp_config import StdioSpec
from agent.toolbox import RESULT_CAP, ToolBox
from memory.conversations import estimate_tokens
from memory.store import Store
from memory.types import StoredMessage
from tests.agent.conftest import API_KEY, OpenAgent
from tests.fakes.llm_api import FakeLLM, ScriptedReply

pytestmark = pytest.mark.anyio

KEY = "cli:test"


def turn(text: str, **fields: Any) -> Turn:
    return Turn(session_key=fields.pop("session_key", KEY), text=text, **fields)


async def stored(store: Store, key: str = KEY) -> list[tuple[str, str | None]]:
    ref = await store.conversations.current(key)
    return [(m.role, m.content) for m in await store.conversations.messages(ref.session_id)]


async def stored_rows(store: Store, key: str = KEY) -> list[StoredMessage]:
    ref = await store.conversations.current(key)
    return await store.conversations.messages(ref.session_id)


def sent_texts(request: dict[str, Any]) -> list[str]:
    return [str(m.get("content")) for m in request["messages"] if m["role"] != "system"]


async def test_reply_answers_and_stores_question_and_answer(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    async with agent_on() as agent:
        reply = await agent.reply(turn("hello there"))

    assert reply.text == "echo: hello there"
    assert reply.message_id is not None and not reply.replayed
    assert await stored(store) == [("user", "hello there"), ("assistant", "echo: hello there")]
    assert all(m.tokens > 0 for m in await stored_rows(store))
    assert llm.headers[0]["authorization"] == f"Bearer {API_KEY}"


async def test_system_prompt_names_omni_the_date_and_the_user(agent_on: OpenAgent, llm: FakeLLM) -> None:
    async with agent_on() as agent:
        await agent.reply(turn("hi", user_name="Ana Lima", user_id=5))

    system = llm.requests[0]["messages"][0]
    assert system["role"] == "system"
    assert "omni" in system["content"]
    assert "Ana Lima" in system["content"]
    assert "Current date and time:" in system["content"]
    assert "Markdown" in system["content"]


async def test_history_continues_after_a_restart(agent_on: OpenAgent, llm: FakeLLM) -> None:
    async with agent_on() as agent:
        await agent.reply(turn("my cat is called Miso"))
    async with agent_on() as agent:  # a fresh store and agent, as after a restart
        reply = await agent.reply(turn("what is my cat called?"))

    assert reply.text == "echo: what is my cat called?"
    assert sent_texts(llm.requests[1]) == [
        "my cat is called Miso",
        "echo: my cat is called Miso",
        "what is my cat called?",
    ]


async def test_sessions_are_separate_and_new_session_starts_fresh(agent_on: OpenAgent, llm: FakeLLM) -> None:
    async with agent_on() as agent:
        await agent.reply(turn("in session a", session_key="cli:a"))
        await agent.reply(turn("in session b", session_key="cli:b"))
        await agent.new_session("cli:a")
        await agent.reply(turn("fresh start", session_key="cli:a"))

    assert sent_texts(llm.requests[1]) == ["in session b"]
    assert sent_texts(llm.requests[2]) == ["fresh start"]


async def test_history_is_cut_to_the_token_budget(agent_on: OpenAgent, llm: FakeLLM) -> None:
    filler = "lorem ipsum dolor sit amet " * 12  # ~80 tokens; its echo as much again
    async with agent_on(history_tokens=500) as agent:
        for i in range(8):
            await agent.reply(turn(f"message {i}: {filler}"))

    # Answers only: the requests that summarised the session's oldest part are not turns.
    turns = [r for r in llm.requests if not str(r["messages"][0]["content"]).startswith("You compact")]
    first, last = sent_texts(turns[0]), sent_texts(turns[-1])
    assert first[0].startswith("message 0")
    assert last[-1].startswith("message 7")
    assert not any(text.startswith("message 0") for text in last)
    assert len(last) < 15  # not all of it
    assert last[0].startswith("message")  # the window opens at a question, not an answer
    assert estimate_tokens(json.dumps(turns[-1]["messages"])) <= 500


async def test_transient_failures_are_retried_then_answered(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    llm.enqueue(ScriptedReply(status=500), ScriptedReply(status=429), ScriptedReply(text="made it"))
    async with agent_on() as agent:
        reply = await agent.reply(turn("are you there?"))

    assert reply.text == "made it"
    assert len(llm.requests) == 3
    assert await stored(store) == [("user", "are you there?"), ("assistant", "made it")]


async def test_persistent_failure_keeps_the_question_once_and_the_next_turn_works(
    agent_on: OpenAgent, llm: FakeLLM, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    llm.enqueue(*[ScriptedReply(status=503)] * 3)
    async with agent_on() as agent:
        with pytest.raises(LLMUnavailable) as failure:
            await agent.reply(turn("first"))
        assert len(llm.requests) == 3  # bounded: three attempts, then give up
        assert await stored(store) == [("user", "first")]

        reply = await agent.reply(turn("second"))

    assert reply.text == "echo: second"
    assert await stored(store) == [("user", "first"), ("user", "second"), ("assistant", "echo: second")]
    assert "try again" in failure.value.user_message
    for text in (str(failure.value), failure.value.user_message, repr(failure.value), caplog.text):
        assert API_KEY not in text


async def test_rejected_request_is_not_retried(agent_on: OpenAgent, llm: FakeLLM, store: Store) -> None:
    llm.enqueue(ScriptedReply(status=401))
    async with agent_on() as agent:
        with pytest.raises(LLMRejected) as failure:
            await agent.reply(turn("hello"))

    assert len(llm.requests) == 1
    assert API_KEY not in str(failure.value) and API_KEY not in failure.value.user_message
    assert await stored(store) == [("user", "hello")]


async def test_missing_api_key_is_reported_as_a_setup_problem(agent_on: OpenAgent, llm: FakeLLM) -> None:
    async with agent_on(llm_api_key=None) as agent:
        with pytest.raises(LLMRejected) as failure:
            await agent.reply(turn("hello"))

    assert "OMNI_LLM_API_KEY" in failure.value.user_message
    assert llm.requests == []  # refused before sending, and not retried


async def test_too_long_conversation_asks_for_a_new_one(agent_on: OpenAgent, llm: FakeLLM) -> None:
    too_long = "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens."
    llm.enqueue(ScriptedReply(status=400, text=too_long))
    async with agent_on() as agent:
        with pytest.raises(ContextTooLong) as failure:
            await agent.reply(turn("hello"))

    assert "/new" in failure.value.user_message
    assert len(llm.requests) == 1


async def test_replayed_update_is_stored_once_and_answered_once(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    question = turn("hello", update_id=42, telegram_chat_id=1, session_key="tg:1")
    async with agent_on() as agent:
        first = await agent.reply(question)
        again = await agent.reply(question)

    assert again.replayed and again.text == first.text == "echo: hello"
    assert again.message_id == first.message_id
    assert len(llm.requests) == 1
    assert await stored(store, "tg:1") == [("user", "hello"), ("assistant", "echo: hello")]


async def test_replay_after_a_failure_answers_without_storing_the_question_again(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    question = turn("hello", update_id=7, telegram_chat_id=1, session_key="tg:1")
    llm.enqueue(*[ScriptedReply(status=500)] * 3)
    async with agent_on() as agent:
        with pytest.raises(LLMUnavailable):
            await agent.reply(question)
        reply = await agent.reply(question)

    assert reply.text == "echo: hello" and not reply.replayed
    assert await stored(store, "tg:1") == [("user", "hello"), ("assistant", "echo: hello")]


async def test_cancelled_reply_keeps_the_question_and_the_session_usable(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    llm.enqueue(ScriptedReply(text="too late", delay=10))
    async with agent_on() as agent:
        task = asyncio.create_task(agent.reply(turn("slow one")))
        await llm.wait_for_requests(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await stored(store) == [("user", "slow one")]

        reply = await agent.reply(turn("quick one"))

    assert reply.text == "echo: quick one"
    assert await stored(store) == [
        ("user", "slow one"),
        ("user", "quick one"),
        ("assistant", "echo: quick one"),
    ]


async def test_usage_is_recorded_per_call(agent_on: OpenAgent, llm: FakeLLM, store: Store) -> None:
    async with agent_on() as agent:
        reply = await agent.reply(turn("count me", user_id=77))

    totals = await store.usage.totals(user_id=77)
    assert totals.calls == 1
    assert totals.prompt_tokens == reply.usage.prompt_tokens > 0
    assert totals.completion_tokens == reply.usage.completion_tokens > 0
    assert reply.usage.latency_ms > 0


async def test_model_switch_is_used_and_survives_a_restart(agent_on: OpenAgent, llm: FakeLLM) -> None:
    async with agent_on() as agent:
        assert agent.model == "openai/fake-model"
        await agent.set_model("openai/other-model")
    async with agent_on() as agent:
        assert agent.model == "openai/other-model"
        await agent.reply(turn("hi"))

    assert llm.requests[0]["model"] == "other-model"


async def test_tool_calls_without_tools_get_a_plain_answer(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    llm.enqueue(ScriptedReply(tool_calls=[{"name": "files__read", "arguments": {"path": "notes.md"}}]))
    async with agent_on() as agent:
        reply = await agent.reply(turn("read my notes"))
        follow_up = await agent.reply(turn("ok"))

    assert reply.text == NO_TOOLS_ANSWER
    assert follow_up.text == "echo: ok"  # the stored session is still one the provider accepts
    assert all(not m.tool_calls for m in await stored_rows(store))


class Clock(ToolProvider):
    """A tool source for the loop: one ``clock`` tool."""

    def __init__(self, answer: str | None = "12:00") -> None:
        self.answer = answer
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def list_tools(self, turn: Turn) -> list[dict[str, Any]]:
        schema = {"type": "object", "properties": {"zone": {"type": "string"}}}
        return [
            {"type": "function", "function": {"name": "clock", "description": "Time", "parameters": schema}}
        ]

    async def call(self, name: str, arguments: dict[str, Any], turn: Turn) -> str:
        self.calls.append((name, arguments))
        return str(self.answer)


async def test_tool_round_runs_the_tool_and_stores_a_valid_history(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    clock = Clock()
    events: list[Progress] = []

    async def progress(event: Progress) -> None:
        events.append(event)

    llm.enqueue(
        ScriptedReply(tool_calls=[{"name": "clock", "arguments": {"zone": "UTC"}}]),
        ScriptedReply(text="It is noon."),
    )
    async with agent_on(tools=clock) as agent:
        reply = await agent.reply(turn("what time is it?"), progress)
        await agent.reply(turn("thanks"))

    assert reply.text == "It is noon."
    assert clock.calls == [("clock", {"zone": "UTC"})]
    assert llm.requests[0]["tools"][0]["function"]["name"] == "clock"
    tool_message = llm.requests[1]["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["content"] == "12:00"
    assert [m.role for m in await stored_rows(store)] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
    ]
    assert [m["role"] for m in llm.requests[2]["messages"]][1:4] == ["user", "assistant", "tool"]
    assert [e.kind for e in events] == ["thinking", "tool_start", "tool_end", "thinking"]


async def test_a_slow_tool_comes_back_as_the_toolbox_error(
    agent_on: OpenAgent, llm: FakeLLM, extra_spec: StdioSpec
) -> None:
    """The toolbox owns the deadline: the loop adds none of its own, and the model gets its error."""
    slow = {"name": "extra__slow", "arguments": {"seconds": 5}}
    llm.enqueue(ScriptedReply(tool_calls=[slow]), ScriptedReply(text="Sorry."))
    async with ToolBox({"extra": extra_spec}, call_timeout=0.5) as box, agent_on(tools=box) as agent:
        reply = await agent.reply(turn("be slow", is_admin=True))

    assert reply.text == "Sorry."
    error = "Error: the tool extra__slow did not finish within 0 s."
    assert llm.requests[1]["messages"][-1]["content"] == error


async def test_tool_rounds_are_bounded(agent_on: OpenAgent, llm: FakeLLM) -> None:
    llm.enqueue(
        ScriptedReply(tool_calls=[{"name": "clock", "arguments": {"n": 1}}]),
        ScriptedReply(tool_calls=[{"name": "clock", "arguments": {"n": 2}}]),
        ScriptedReply(text="Best I can do."),
    )
    async with agent_on(tools=Clock(), max_tool_rounds=2) as agent:
        reply = await agent.reply(turn("loop forever"))

    # After the last round the model is asked once more, with no tools, for a final answer.
    assert reply.text == "Best I can do."
    assert len(llm.requests) == 3
    assert not llm.requests[2].get("tools")


async def test_a_huge_tool_result_reaches_the_model_cut_once_by_the_toolbox(
    agent_on: OpenAgent, llm: FakeLLM, extra_spec: StdioSpec
) -> None:
    llm.enqueue(
        ScriptedReply(tool_calls=[{"name": "extra__big", "arguments": {"size": 100_000}}]),
        ScriptedReply(text="Long."),
    )
    async with ToolBox({"extra": extra_spec}) as box, agent_on(tools=box) as agent:
        await agent.reply(turn("read it all", is_admin=True))

    content = llm.requests[1]["messages"][-1]["content"]
    assert content.startswith("x" * RESULT_CAP)
    note = f"[truncated: the result was 100,000 characters; showing the first {RESULT_CAP:,}]"
    assert content.endswith(note)
