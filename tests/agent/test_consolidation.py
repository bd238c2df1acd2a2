"""Consolidation through the agent: facts distilled in the background, recalled later."""

from __future__ import annotations

import json

import pytest

from agent import Turn
from memory.store import Store
from tests.agent.conftest import OpenAgent
from tests.fakes.llm_api import FakeLLM, ScriptedReply

pytestmark = pytest.mark.anyio

OWNER = "local:me"


def _facts(*facts: dict[str, object]) -> ScriptedReply:
    return ScriptedReply(text=json.dumps({"facts": list(facts)}))


async def test_facts_are_distilled_in_the_background_and_recalled(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    # The answer, then the consolidation call: the exchange's turns are episodes 1 and 2.
    llm.enqueue(ScriptedReply(text="What a lovely name!"))
    llm.enqueue(_facts({"text": "Has a dog called Miso.", "sources": [1]}))
    async with agent_on(memory_consolidate_every=1) as agent:
        await agent.reply(Turn("cli:me", "I adopted a puppy, her name is Miso"))
        await agent.compacted()
        (fact,) = await store.facts.current(OWNER)
        assert fact.text == "Has a dog called Miso." and fact.meta["sources"] == [1]
        assert await store.facts.mark(OWNER) == 2
        consolidation = llm.requests[1]["messages"]
        assert "[1] " in consolidation[1]["content"] and "Miso" in consolidation[1]["content"]

        await agent.new_session("cli:me")
        await agent.reply(Turn("cli:me", "what is my dog called?"))
        await agent.compacted()
    prompt = str(llm.requests[2]["messages"][0]["content"])
    assert "a fact you noted: Has a dog called Miso." in prompt


async def test_a_contradicting_fact_supersedes_and_a_bad_answer_changes_nothing(
    agent_on: OpenAgent, llm: FakeLLM, store: Store
) -> None:
    llm.enqueue(ScriptedReply(text="Nice."), _facts({"text": "Lives in Lyon.", "sources": [1]}))
    llm.enqueue(ScriptedReply(text="Congrats!"), ScriptedReply(text="I'd rather chat than write JSON"))
    async with agent_on(memory_consolidate_every=1) as agent:
        await agent.reply(Turn("cli:me", "I live in Lyon"))
        await agent.compacted()
        (lyon,) = await store.facts.current(OWNER)
        await agent.reply(Turn("cli:me", "I just moved to Porto!"))
        await agent.compacted()
        assert [f.id for f in await store.facts.current(OWNER)] == [lyon.id]  # unchanged
        assert await store.facts.mark(OWNER) == 2  # turns 4 and 5 (3 is the fact) wait for next time
        llm.enqueue(
            ScriptedReply(text="Sure."),
            _facts({"text": "Lives in Porto since 2026.", "sources": [4], "supersedes": [f"F{lyon.id}"]}),
        )
        await agent.reply(Turn("cli:me", "remember that"))
        await agent.compacted()
    (porto,) = await store.facts.current(OWNER)
    assert porto.text == "Lives in Porto since 2026." and porto.meta["supersedes"] == [lyon.id]


async def test_off_by_default(agent_on: OpenAgent, llm: FakeLLM, store: Store) -> None:
    async with agent_on() as agent:
        for i in range(3):
            await agent.reply(Turn("cli:me", f"message {i}"))
        await agent.compacted()
    assert len(llm.requests) == 3 and await store.facts.current(OWNER) == []
