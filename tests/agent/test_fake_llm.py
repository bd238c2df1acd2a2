"""The fake LLM's HTTP surface, which the bot's subprocess tests drive without the object."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import pytest

from tests.fakes.llm_api import FakeLLM, ScriptedReply
from tests.fakes.server import serve

pytestmark = pytest.mark.anyio

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


async def test_control_endpoints_script_replies_and_report_requests() -> None:
    llm = FakeLLM()
    async with serve(llm.app) as base, httpx.AsyncClient(base_url=base) as http:
        queued = await http.post(
            "/_control/enqueue",
            json=[
                {"tool_calls": [{"name": "files__read", "arguments": {"path": "a.md"}}]},
                {"status": 429},
            ],
        )
        assert queued.json() == {"queued": 2}

        called = (await http.post("/v1/chat/completions", json=CHAT)).json()
        limited = await http.post("/chat/completions", json=CHAT)
        echoed = (await http.post("/v1/chat/completions", json=CHAT)).json()
        seen = (await http.get("/_control/requests")).json()
        models = (await http.get("/v1/models")).json()
        await http.post("/_control/reset")
        after_reset = (await http.get("/_control/requests")).json()
        config = (await http.post("/_control/config", json={"default_delay": 0.5})).json()

    call = called["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {"name": "files__read", "arguments": '{"path": "a.md"}'}
    assert call["id"].startswith("call_") and called["choices"][0]["finish_reason"] == "tool_calls"
    assert limited.status_code == 429 and limited.headers["retry-after"] == "0"
    assert limited.json()["error"]["type"] == "rate_limit_exceeded"
    assert echoed["choices"][0]["message"]["content"] == "echo: hi"
    assert (
        echoed["usage"]["total_tokens"]
        == echoed["usage"]["prompt_tokens"] + echoed["usage"]["completion_tokens"]
    )
    assert seen == [CHAT, CHAT, CHAT]
    assert models["data"][0]["id"] == "fake-model"
    assert after_reset == [] and config == {"default_delay": 0.5} and llm.default_delay == 0.5


async def test_bad_request_body_gets_an_openai_style_error() -> None:
    llm = FakeLLM()
    async with serve(llm.app) as base, httpx.AsyncClient(base_url=base) as http:
        response = await http.post("/v1/chat/completions", json={"model": "fake-model"})

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert llm.requests == []


# -- streaming ------------------------------------------------------------------------------

STREAMED = "Streaming, like a real server: pieces of about four characters, spaces kept.\n  Done."
STREAMED_PIECES = re.findall(r"\s*\S{1,4}|\s+", STREAMED)
MESSAGES = [{"role": "user", "content": "stream please"}]


async def _post_chat(base: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base) as http:
        return await http.post("/v1/chat/completions", json=body)


def _events(body: str) -> list[Any]:
    """The JSON of each ``data:`` event of an SSE body, ``[DONE]`` kept as the string."""
    datas = [line.removeprefix("data: ") for line in body.split("\n\n") if line]
    return [d if d == "[DONE]" else json.loads(d) for d in datas]


async def _litellm_stream(base: str, **options: Any) -> tuple[list[Any], float]:
    """Every chunk of a streamed litellm call and the seconds from the first to the last."""
    import litellm

    stream = await litellm.acompletion(
        model="openai/fake-model",
        api_base=base + "/v1",
        api_key="sk-test",
        messages=MESSAGES,
        stream=True,
        **options,
    )
    chunks, times = [], []
    async for chunk in stream:
        chunks.append(chunk)
        times.append(time.monotonic())
    return chunks, times[-1] - times[0]


async def test_a_stream_rebuilds_into_the_same_text_tool_calls_and_usage() -> None:
    llm = FakeLLM()
    call = {"name": "files__read", "arguments": {"path": "notes/a long name.md", "lines": [1, 20]}}
    llm.enqueue(ScriptedReply(text=STREAMED, tool_calls=[call, {"name": "web__get", "arguments": {}}]))
    llm.enqueue(ScriptedReply(text=STREAMED))
    async with serve(llm.app) as base:
        chunks, _ = await _litellm_stream(base, stream_options={"include_usage": True})
        plain = (await _post_chat(base, {"model": "fake-model", "messages": MESSAGES})).json()

    import litellm

    rebuilt: Any = litellm.stream_chunk_builder(chunks, messages=MESSAGES)
    message = rebuilt.choices[0].message
    assert message.content == STREAMED and rebuilt.choices[0].finish_reason == "tool_calls"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls] == [
        ("files__read", call["arguments"]),
        ("web__get", {}),
    ]
    assert message.tool_calls[0].id != message.tool_calls[1].id
    # The same usage as the same answer unstreamed: the fake's token estimate, not a recount.
    assert plain["choices"][0]["message"]["content"] == STREAMED
    completion = plain["usage"]["completion_tokens"] + 20  # ten per tool call
    assert (rebuilt.usage.prompt_tokens, rebuilt.usage.completion_tokens) == (
        plain["usage"]["prompt_tokens"],
        completion,
    )


async def test_the_stream_is_cut_into_token_sized_chunks_as_openai_sends_them() -> None:
    llm = FakeLLM()
    llm.enqueue(
        ScriptedReply(text="Hi there friend", tool_calls=[{"name": "t", "arguments": {"a": 1}}]),
        ScriptedReply(text="no usage"),
    )
    async with serve(llm.app) as base:
        body = {"model": "fake-model", "messages": MESSAGES, "stream": True}
        with_usage = _events(
            (await _post_chat(base, {**body, "stream_options": {"include_usage": True}})).text
        )
        without = _events((await _post_chat(base, body)).text)

    deltas = [e["choices"][0]["delta"] for e in with_usage[:-3]]
    assert [d.get("content") for d in deltas[:4]] == ["Hi", " ther", "e", " frie"]
    assert "".join(d.get("content") or "" for d in deltas) == "Hi there friend"
    assert deltas[0]["role"] == "assistant" and all("role" not in d for d in deltas[1:])
    first_call = next(d["tool_calls"][0] for d in deltas if "tool_calls" in d)
    assert first_call["function"] == {"name": "t", "arguments": ""} and first_call["type"] == "function"
    arguments = [d["tool_calls"][0]["function"]["arguments"] for d in deltas if "tool_calls" in d]
    assert "".join(arguments) == '{"a": 1}' and len(arguments) > 2  # the arguments come in pieces
    finish, usage, done = with_usage[-3:]
    assert finish["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}]
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0 and done == "[DONE]"
    assert without[-1] == "[DONE]" and without[-2]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in e for e in without[:-1])


async def test_a_stream_is_paced_at_its_token_rate() -> None:
    llm = FakeLLM()
    text = "abcd" * 40  # 40 pieces
    llm.enqueue(ScriptedReply(text=text, tokens_per_s=200), ScriptedReply(text=text))
    async with serve(llm.app) as base, httpx.AsyncClient(base_url=base) as http:
        _, took = await _litellm_stream(base)  # 39 gaps of 5 ms: 0.195 s
        await http.post("/_control/config", json={"tokens_per_s": 400})
        _, fake_wide = await _litellm_stream(base)  # the fake's rate: 0.0975 s
        started = time.monotonic()
        await http.post(
            "/v1/chat/completions", json={**CHAT, "messages": [{"role": "user", "content": text}]}
        )
        unstreamed = time.monotonic() - started  # "echo: " + text, 42 pieces: 0.1025 s

    assert 0.12 < took < 0.6
    assert llm.tokens_per_s == 400 and 0.05 < fake_wide < took
    assert 0.1 < unstreamed < 0.6


async def test_a_provider_dying_mid_stream_cuts_the_connection() -> None:
    from litellm.exceptions import MidStreamFallbackError

    llm = FakeLLM()
    llm.enqueue(
        ScriptedReply(text=STREAMED, fail_after_tokens=3),
        ScriptedReply(text="x", fail_after_tokens=0),
        ScriptedReply(text="x", fail_after_tokens=5),  # unstreamed: half a body, then nothing
    )
    async with serve(llm.app) as base:
        with pytest.raises(MidStreamFallbackError) as died:  # what litellm makes of it
            await _litellm_stream(base)
        async with httpx.AsyncClient(base_url=base) as http:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.post("/v1/chat/completions", json={**CHAT, "stream": True})
            with pytest.raises(httpx.RemoteProtocolError):
                await http.post("/v1/chat/completions", json=CHAT)

    assert died.value.generated_content == "".join(STREAMED_PIECES[:3])
    assert not died.value.is_pre_first_chunk and llm.pending == 0


async def test_a_stream_stops_when_the_client_goes_away() -> None:
    llm = FakeLLM()
    llm.enqueue(ScriptedReply(text="word " * 1000, tokens_per_s=50))
    async with serve(llm.app) as base, httpx.AsyncClient(base_url=base) as http:
        async with http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
            lines = response.aiter_lines()
            assert (await anext(lines)).startswith("data: ")
            assert llm.open_streams == 1
        deadline = time.monotonic() + 2
        while llm.open_streams and time.monotonic() < deadline:  # noqa: ASYNC110 (a counter)
            await asyncio.sleep(0.01)
        assert llm.open_streams == 0
