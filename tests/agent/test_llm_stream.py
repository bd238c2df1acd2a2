"""The LLM client's streamed completions, against the fake OpenAI-compatible server: the same
completion as unstreamed, pieces passed on as written, and usage when a provider reports none."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from agent import Progress, Turn
from agent.llm import LiteLLMClient, RetryPolicy
from agent.stream_pace import QUICK_RUN, QUICK_S, StreamPace
from tests.agent.conftest import OpenAgent
from tests.fakes.llm_api import FakeLLM, ScriptedReply

pytestmark = pytest.mark.anyio

QUESTION = [{"role": "user", "content": "How are the plans for the week coming along?"}]


def _client(llm_base: str) -> LiteLLMClient:
    return LiteLLMClient(api_base=llm_base, api_key=SecretStr("sk-test"), retry=RetryPolicy(attempts=1))


async def test_a_streamed_completion_is_the_unstreamed_one_written_piece_by_piece(
    llm: FakeLLM, llm_base: str
) -> None:
    text = "The plan: **one**, two, three. " * 5
    llm.enqueue(ScriptedReply(text=text), ScriptedReply(text=text))
    client = _client(llm_base)
    pieces: list[str] = []

    async def on_text(piece: str) -> None:
        pieces.append(piece)

    streamed = await client.complete(QUESTION, model="openai/fake-model", on_text=on_text)
    whole = await client.complete(QUESTION, model="openai/fake-model")
    assert len(pieces) > 10 and "".join(pieces) == text
    assert streamed.text == whole.text == text
    assert streamed.usage.prompt_tokens == whole.usage.prompt_tokens > 0
    assert streamed.usage.completion_tokens == whole.usage.completion_tokens > 0
    assert streamed.message == whole.message


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_usage_a_provider_does_not_report_is_estimated(
    llm: FakeLLM, llm_base: str, stream: bool
) -> None:
    llm.enqueue(ScriptedReply(text="an answer of some length " * 8, usage=False))

    async def on_text(piece: str) -> None:
        return None

    completion = await _client(llm_base).complete(
        QUESTION, model="openai/fake-model", on_text=on_text if stream else None
    )
    # Daily limits count tokens: an answer must never be free because the provider was silent.
    assert completion.usage.prompt_tokens > 5 and completion.usage.completion_tokens > 30


async def test_a_model_that_always_answers_at_once_is_not_streamed_until_it_slows(
    agent_on: OpenAgent, llm: FakeLLM
) -> None:
    async def progress(event: Progress) -> None:
        return None

    def streamed() -> list[bool]:
        return [bool(r.get("stream")) for r in llm.requests]

    async with agent_on() as agent:
        for i in range(QUICK_RUN + 2):
            await agent.reply(Turn(session_key="cli:pace", text=f"quick {i}"), progress, stream=True)
        # Twenty answers in a row within half a second: a preview would never have shown.
        assert streamed() == [True] * QUICK_RUN + [False, False]
        llm.enqueue(ScriptedReply(text="a slow one", delay=QUICK_S + 0.2))
        await agent.reply(Turn(session_key="cli:pace", text="slow"), progress, stream=True)
        await agent.reply(Turn(session_key="cli:pace", text="after it"), progress, stream=True)
        assert streamed()[-2:] == [False, True]  # the slow answer brings streaming back


def test_the_pace_counts_quick_completions_in_a_row() -> None:
    pace = StreamPace()
    for _ in range(QUICK_RUN - 1):
        pace.observed(0.01)
    pace.observed(QUICK_S + 0.01)  # one slow completion starts the count again
    for _ in range(QUICK_RUN - 1):
        pace.observed(0.01)
    assert pace.worth_streaming
    pace.observed(QUICK_S)
    assert not pace.worth_streaming
