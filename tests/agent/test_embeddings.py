"""With OMNI_EMBEDDING_MODEL set, the agent's episodes get vectors from the fake LLM's
/v1/embeddings in the background, and a failing endpoint only delays them."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable

import pytest

from agent import Turn
from tests.agent.conftest import OpenAgent
from tests.fakes.llm_api import EMBEDDING_DIM, FakeLLM, ScriptedReply

pytestmark = pytest.mark.anyio

EMBEDDING_MODEL = "openai/fake-embedding"


def vectors(database_url: str) -> list[tuple[str, bytes | None]]:
    with sqlite3.connect(database_url.split("///", 1)[1]) as conn:
        return conn.execute("SELECT text, embedding FROM episodes ORDER BY id").fetchall()


async def until(condition: Callable[[], bool], within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_episodes_get_embeddings_in_the_background_and_recall_uses_them(
    agent_on: OpenAgent, llm: FakeLLM, database_url: str
) -> None:
    llm.enqueue(ScriptedReply(text="Noted: the code word is Tangerine-42."))
    async with agent_on(embedding_model=EMBEDDING_MODEL) as agent:
        await agent.reply(Turn("cli:me", "remember the code word: Tangerine-42"))
        await until(lambda: all(blob for _, blob in vectors(database_url)))
        await agent.new_session("cli:me")
        await agent.reply(Turn("cli:me", "what was the code word?"))

    stored = vectors(database_url)
    assert all(blob is not None and len(blob) == 4 * EMBEDDING_DIM for _, blob in stored[:2])
    texts = llm.embedded_texts
    assert "remember the code word: Tangerine-42" in texts  # an episode, batched
    assert "what was the code word?" in texts  # the question, for recall
    assert all(r["model"] == "fake-embedding" for r in llm.embedding_requests)
    assert "Tangerine-42" in str(llm.requests[-1]["messages"][0]["content"])


async def test_a_failing_embedding_endpoint_loses_no_episode_and_is_caught_up_later(
    agent_on: OpenAgent, llm: FakeLLM, database_url: str
) -> None:
    llm.fail_embeddings(10_000)
    async with agent_on(embedding_model=EMBEDDING_MODEL) as agent:
        reply = await agent.reply(Turn("cli:me", "my sister moved to Porto"))
        assert reply.text == "echo: my sister moved to Porto"
        await until(lambda: len(llm.embedding_requests) >= 1)
        assert [blob for _, blob in vectors(database_url)] == [None, None]  # stored, not embedded
        await agent.new_session("cli:me")
        await agent.reply(Turn("cli:me", "where does my sister live?"))  # lexical meanwhile
        assert "Porto" in str(llm.requests[-1]["messages"][0]["content"])

        llm.fail_embeddings(0)
        await until(lambda: all(blob for _, blob in vectors(database_url)))
    assert len(vectors(database_url)) == 4
