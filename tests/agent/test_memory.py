"""The agent remembers across sessions: every exchange stored as episodes, recalled into the prompt."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from agent import ToolProvider, Turn
from memory.store import Store
from tests.agent.conftest import OpenAgent
from tests.fakes.llm_api import FakeLLM, ScriptedReply

pytestmark = pytest.mark.anyio

HEADER = "Things you remember from earlier conversations"


def system_of(request: dict[str, Any]) -> str:
    return str(request["messages"][0]["content"])


async def test_a_code_word_told_before_new_is_recalled_in_the_next_session(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    llm.enqueue(ScriptedReply(text="Noted, the code word is Tangerine-42."))
    async with agent_on() as agent:
        await agent.reply(Turn("cli:me", "remember the code word: Tangerine-42"))
        await agent.new_session("cli:me")
        await agent.reply(Turn("cli:me", "what was the code word I gave you?"))

    assert HEADER not in system_of(llm.requests[0])
    second = system_of(llm.requests[1])
    assert HEADER in second and "Tangerine-42" in second
    assert "they said: remember the code word: Tangerine-42" in second
    assert "you said: Noted, the code word is Tangerine-42." in second
    page, total = await store.episodes.listing("local:me", limit=10)
    assert total == 4 and {v.speaker for v in page} == {"user", "assistant"}


async def test_an_answer_and_its_episodes_and_recalls_are_stored_together(
    agent_on: OpenAgent, store: Store, database_url: str
) -> None:
    async with agent_on() as agent:
        await agent.reply(Turn("cli:me", "my sister lives in Porto"))
        await agent.new_session("cli:me")
        reply = await agent.reply(Turn("cli:me", "where does my sister live?"))

    page, _ = await store.episodes.listing("local:me", limit=10)
    answer = next(v for v in page if v.meta.get("message_id") == reply.message_id)
    assert answer.speaker == "assistant" and answer.text == reply.text
    path = database_url.split("///", 1)[1]
    with sqlite3.connect(path) as conn:
        recalled = conn.execute(
            "SELECT e.text FROM answer_recalls r JOIN episodes e ON e.id = r.episode_id "
            "WHERE r.message_id = ?",
            (reply.message_id,),
        ).fetchall()
    assert ("my sister lives in Porto",) in recalled
    # Counted once, in the answer's transaction.
    told = next(v for v in page if v.text == "my sister lives in Porto")
    assert told.recall_count == 1


async def test_a_private_memory_stays_out_of_a_group_and_of_other_users(
    agent_on: OpenAgent, llm: FakeLLM
) -> None:
    async with agent_on() as agent:
        await agent.reply(Turn("tg:5", "my bank pin is Walrus", user_id=5, telegram_chat_id=5))
        await agent.reply(Turn("tg:-100", "what is my bank pin?", user_id=5, telegram_chat_id=-100))
        await agent.reply(Turn("tg:6", "what is my bank pin?", user_id=6, telegram_chat_id=6))
        await agent.new_session("tg:5", telegram_chat_id=5)
        await agent.reply(Turn("tg:5", "what is my bank pin?", user_id=5, telegram_chat_id=5))

    assert "Walrus" not in system_of(llm.requests[1])
    assert "Walrus" not in system_of(llm.requests[2])
    assert "Walrus" in system_of(llm.requests[3])


async def test_a_group_remembers_who_said_what(agent_on: OpenAgent, llm: FakeLLM) -> None:
    async with agent_on() as agent:
        group = {"telegram_chat_id": -100}
        await agent.reply(Turn("tg:-100", "the picnic is at the lake", user_id=7, user_name="Ana", **group))
        await agent.new_session("tg:-100", telegram_chat_id=-100)
        await agent.reply(Turn("tg:-100", "where is the picnic?", user_id=8, user_name="Ben", **group))

    system = system_of(llm.requests[1])
    assert "this group" in system and "Ana said: the picnic is at the lake" in system


async def test_tools_used_are_summarised_on_the_answer_episode(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    class Clock(ToolProvider):
        async def list_tools(self, turn: Turn) -> list[dict[str, Any]]:
            schema = {"type": "object", "properties": {}}
            return [{"type": "function", "function": {"name": "time_now", "parameters": schema}}]

        async def call(self, name: str, arguments: dict[str, Any], turn: Turn) -> str:
            return "12:00"

    llm.enqueue(ScriptedReply(tool_calls=[{"name": "time_now", "arguments": {}}]), ScriptedReply(text="noon"))
    async with agent_on(tools=Clock()) as agent:
        await agent.reply(Turn("cli:me", "what time is it?"))

    page, _ = await store.episodes.listing("local:me")
    assert [v.meta.get("tools") for v in page if v.speaker == "assistant"] == [["time_now"]]


async def test_turns_that_left_the_window_of_a_long_session_are_recalled(
    agent_on: OpenAgent, llm: FakeLLM
) -> None:
    """One session forever (the user never sends /new): what scrolled out of the prompt window
    is recalled; what the window still holds is not repeated."""
    async with agent_on(history_tokens=500) as agent:
        await agent.reply(Turn("cli:me", "my locker code is Quokka-77"))
        for i in range(30):
            await agent.reply(Turn("cli:me", f"filler message number {i} about the weather today"))
        await agent.compacted()
        await agent.reply(Turn("cli:me", "what is my locker code?"))
    request = llm.requests[-1]["messages"]
    history = " ".join(str(m["content"]) for m in request[1:])
    assert "Quokka-77" not in history, "the old turn left the window"
    system = system_of(llm.requests[-1])
    assert HEADER in system and "Quokka-77" in system
    # The window's own turns are not recalled again.
    assert "filler message number 29" not in system
