"""Compaction: a long session's oldest part becomes a stored summary the window starts with."""

from __future__ import annotations

from typing import Any

import pytest

from agent import Turn
from agent.compaction import MESSAGES, TRIGGER, plan
from agent.loop import ToolProvider
from agent.prompts import SUMMARY_HEADER
from memory.store import Store
from memory.types import StoredMessage
from tests.agent.conftest import OpenAgent
from tests.fakes.llm_api import FakeLLM, ScriptedReply

pytestmark = pytest.mark.anyio

KEY = "cli:long"
FILLER = "lorem ipsum dolor sit amet " * 12  # about 80 tokens; its echo as much again
BUDGET = 700
FIRST_SUMMARY_AFTER = 2  # the turn (0-based) whose window passes the trigger at BUDGET
SUMMARY = "Ana sent three long messages of lorem ipsum; nothing is open."


def is_summary_request(request: dict[str, Any]) -> bool:
    return str(request["messages"][0]["content"]).startswith("You compact a chat")


def history_of(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in request["messages"] if m["role"] != "system"]


def assert_valid_for_a_provider(request: dict[str, Any]) -> None:
    """One system message first; history opens at a user message; every tool result follows the
    assistant message that called it."""
    roles = [m["role"] for m in request["messages"]]
    assert roles[0] == "system" and "system" not in roles[1:]
    history = history_of(request)
    assert history[0]["role"] == "user"
    called: set[str] = set()
    for message in history:
        called |= {c["id"] for c in message.get("tool_calls") or []}
        if message["role"] == "tool":
            assert message["tool_call_id"] in called


async def summaries(store: Store, key: str = KEY) -> list[StoredMessage]:
    ref = await store.conversations.current(key)
    return [m for m in await store.conversations.messages(ref.session_id) if m.role == "system"]


async def test_a_long_session_gets_a_summary_that_the_next_turn_starts_with(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    async with agent_on(history_tokens=BUDGET) as agent:
        for i in range(FIRST_SUMMARY_AFTER + 1):
            if i == FIRST_SUMMARY_AFTER:  # this turn's answer, then the summary call after it
                llm.enqueue(ScriptedReply(text=f"echo: message {i}: {FILLER}"), ScriptedReply(text=SUMMARY))
            await agent.reply(Turn(KEY, f"message {i}: {FILLER}"))
            await agent.compacted()  # in the background: the reply did not wait for it
        asked = llm.requests[-1]
        assert is_summary_request(asked)
        assert sum(map(is_summary_request, llm.requests)) == 1
        await agent.reply(Turn(KEY, "and now?"))

    (summary,) = await summaries(store)
    assert summary.content == SUMMARY
    transcript = asked["messages"][1]["content"]
    assert transcript.startswith("User: message 0") and "Assistant: echo: message 0" in transcript
    assert f"message {FIRST_SUMMARY_AFTER}" not in transcript  # the latest turn is kept as it is
    nxt = llm.requests[-1]
    assert nxt["messages"][0]["content"].endswith(f"{SUMMARY_HEADER}\n{summary.content}")
    texts = [str(m["content"]) for m in history_of(nxt)]
    assert not any(t.startswith("message 0") for t in texts)  # summarised, not repeated
    assert texts[-3:] == [
        f"message {FIRST_SUMMARY_AFTER}: {FILLER}",
        f"echo: message {FIRST_SUMMARY_AFTER}: {FILLER}",
        "and now?",
    ]
    assert_valid_for_a_provider(nxt)
    # Usage of the summary call is recorded like any other.
    assert (await store.usage.totals()).calls == len(llm.requests)


async def test_a_failing_summary_call_leaves_the_history_and_the_window_as_before(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    async with agent_on(history_tokens=BUDGET) as agent:
        for i in range(FIRST_SUMMARY_AFTER + 1):
            if i == FIRST_SUMMARY_AFTER:  # this turn's answer, then its summary call, which fails
                llm.enqueue(ScriptedReply(text=f"echo: message {i}: {FILLER}"), ScriptedReply(status=400))
            await agent.reply(Turn(KEY, f"message {i}: {FILLER}"))
            await agent.compacted()
        assert is_summary_request(llm.requests[-1]) and llm.pending == 0
        reply = await agent.reply(Turn(KEY, "still there?"))

    assert reply.text == "echo: still there?"
    assert await summaries(store) == []
    nxt = llm.requests[-1]
    assert SUMMARY_HEADER not in nxt["messages"][0]["content"]
    # The window as without compaction: the newest stored messages that fit, from a question.
    ref = await store.conversations.current(KEY)
    stored = [m.content for m in await store.conversations.messages(ref.session_id)]
    texts = [str(m["content"]) for m in history_of(nxt)]
    assert texts == stored[-len(texts) - 1 : -1]  # all but the answer to it
    assert texts[-1] == "still there?"
    assert_valid_for_a_provider(nxt)


class Notes(ToolProvider):
    async def list_tools(self, turn: Turn) -> list[dict[str, Any]]:
        schema = {"type": "object", "properties": {}}
        return [
            {"type": "function", "function": {"name": "notes", "description": "Notes", "parameters": schema}}
        ]

    async def call(self, name: str, arguments: dict[str, Any], turn: Turn) -> str:
        return f"note: {FILLER}"


async def test_compaction_never_splits_a_tool_call_from_its_result(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    async with agent_on(history_tokens=BUDGET, tools=Notes()) as agent:
        for i in range(8):
            llm.enqueue(ScriptedReply(tool_calls=[{"name": "notes", "arguments": {"i": i}}]))
            llm.enqueue(ScriptedReply(text=f"answer {i}"))
            await agent.reply(Turn(KEY, f"message {i}: {FILLER}"))
            await agent.compacted()
            assert_valid_for_a_provider(next(r for r in reversed(llm.requests) if not is_summary_request(r)))

    stored = await summaries(store)
    assert stored  # it did compact
    ref = await store.conversations.current(KEY)
    messages = await store.conversations.messages(ref.session_id)
    by_id = {m.id: i for i, m in enumerate(messages)}
    for summary in stored:
        after = messages[by_id[int(summary.tool_call_id or 0)] + 1 :]
        assert next(m for m in after if m.role != "system").role == "user"  # cut before a question


def row(mid: int, role: str, tokens: int = 10, **fields: Any) -> StoredMessage:
    return StoredMessage(mid, 1, role, f"{role} {mid}", tokens, **fields)  # type: ignore[arg-type]


def test_plan_cuts_before_a_user_message_and_always_keeps_the_latest_turn() -> None:
    call = [{"id": "c", "type": "function", "function": {"name": "t", "arguments": "{}"}}]
    session = [
        row(1, "user"),
        row(2, "assistant"),
        row(3, "user"),
        row(4, "assistant", tool_calls=call),
        row(5, "tool", 50, tool_call_id="c"),
        row(6, "assistant"),
        row(7, "user"),
        row(8, "assistant"),
    ]
    found = plan(None, session, keep=40)  # the cut would fall inside the tool turn: it moves out
    assert found is not None and found.through == 6
    assert plan(None, session, keep=5) is not None  # over the budget, the latest turn still stays
    assert plan(None, session, keep=5).through == 6  # type: ignore[union-attr]
    assert plan(None, session, keep=1_000) is None  # everything fits: nothing to summarise
    assert plan(None, session[-2:], keep=1) is None  # only the latest turn: nothing to summarise


async def test_a_long_chat_of_short_messages_is_compacted_by_its_count(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    """Far under the token budget, a window of more than TRIGGER x MESSAGES messages is
    compacted too: requests stay small however long the chat of short messages grows."""
    turns = int(MESSAGES * TRIGGER) // 2 + 20
    async with agent_on() as agent:
        for i in range(turns):
            await agent.reply(Turn(KEY, f"note {i}: the plan for today"))
            await agent.compacted()

    assert len(await summaries(store)) >= 1
    chats = [r for r in llm.requests if not is_summary_request(r)]
    assert max(len(history_of(r)) for r in chats) <= MESSAGES * TRIGGER + 2
    last = [m["content"] for m in history_of(chats[-1])]
    assert "note 0: the plan for today" not in last  # the oldest notes live on in the summary
    assert SUMMARY_HEADER in chats[-1]["messages"][0]["content"]
    for request in chats:
        assert_valid_for_a_provider(request)
