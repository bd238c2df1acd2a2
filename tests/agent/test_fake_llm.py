"""The fake LLM's HTTP surface, which the bot's subprocess tests drive without the object."""

from __future__ import annotations

import httpx
import pytest

from tests.fakes.llm_api import FakeLLM
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
