"""How the gateway runs turns, in process: deadlines, the concurrency limit, session order."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.fakes.llm_api import ScriptedReply
from tests.gateway.conftest import episodes, history, message

pytestmark = pytest.mark.anyio

InProcessFactory = Callable[..., Any]


async def test_a_slow_turn_is_a_504_and_leaves_the_session_whole(
    in_process: InProcessFactory, db_url: str
) -> None:
    async with in_process(db_url, timeout=1.0) as gw:
        gw.llm.enqueue(ScriptedReply(text="too late", delay=4.0))
        started = time.monotonic()
        slow = await gw.client.post("/message", json=message("s1", "first question"))
        assert slow.status_code == 504, slow.text
        assert slow.json()["error"] == "timeout" and time.monotonic() - started < 3.0

        again = await gw.client.post("/message", json=message("s1", "second question"))
        assert again.status_code == 200 and again.json()["output"] == "echo: second question"
        # The next prompt continued the session: the first question, then the second.
        last_prompt = [m["content"] for m in gw.llm.requests[-1]["messages"] if m["role"] != "system"]
        assert last_prompt == ["first question", "second question"]
        assert gw.gateway.admission.busy == 0 and len(gw.gateway.sessions) == 0

    # The abandoned question stays (as a /stop in Telegram keeps it); no answer, no tool round and
    # no memory of it was half stored: the only exchange stored whole is the second.
    assert [(m.role, m.content) for m in await history(db_url, "s1")] == [
        ("user", "first question"),
        ("user", "second question"),
        ("assistant", "echo: second question"),
    ]
    assert sorted(await episodes(db_url, "s1")) == ["echo: second question", "second question"]


async def test_a_turn_cut_off_between_tool_rounds_stores_no_half_round(
    in_process: InProcessFactory, sqlite_url: str
) -> None:
    # No tools are on offer in process, so the agent answers a tool call with its fallback; the
    # cut comes while the model is still thinking: nothing of the answer is stored.
    async with in_process(sqlite_url, timeout=1.0) as gw:
        gw.llm.enqueue(ScriptedReply(tool_calls=[{"name": "anything", "arguments": {}}], delay=3.0))
        response = await gw.client.post("/message", json=message("s2", "do a thing"))
        assert response.status_code == 504
    stored = await history(sqlite_url, "s2")
    assert [m.role for m in stored] == ["user"] and not any(m.tool_calls for m in stored)


async def test_a_full_house_answers_503_with_retry_after(
    in_process: InProcessFactory, sqlite_url: str
) -> None:
    async with in_process(sqlite_url, concurrency=2, llm_delay=0.5) as gw:
        first = asyncio.create_task(gw.client.post("/message", json=message("a", "one")))
        second = asyncio.create_task(gw.client.post("/message", json=message("b", "two")))
        await gw.llm.wait_for_requests(2)  # both are with the model now
        refused = await gw.client.post("/message", json=message("c", "three"))
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "busy" and int(refused.headers["retry-after"]) >= 1
        assert [r.status_code for r in await asyncio.gather(first, second)] == [200, 200]
        # Once they are done there is room again.
        assert (await gw.client.post("/message", json=message("c", "three"))).status_code == 200
        assert len(gw.llm.requests) == 3  # the refused request never reached the model


async def test_requests_waiting_for_their_session_count_against_the_limit(
    in_process: InProcessFactory, sqlite_url: str
) -> None:
    async with in_process(sqlite_url, concurrency=2, llm_delay=0.5) as gw:
        first = asyncio.create_task(gw.client.post("/message", json=message("a", "one")))
        await gw.llm.wait_for_requests(1)
        queued = asyncio.create_task(gw.client.post("/message", json=message("a", "two")))
        for _ in range(500):  # until the second one holds its slot, waiting for the session
            if gw.gateway.admission.busy == 2:
                break
            await asyncio.sleep(0.01)
        refused = await gw.client.post("/message", json=message("a", "three"))
        assert refused.status_code == 503
        assert [r.status_code for r in await asyncio.gather(first, queued)] == [200, 200]


async def test_one_session_answers_in_order_others_side_by_side(
    in_process: InProcessFactory, sqlite_url: str
) -> None:
    delay = 0.6
    async with in_process(sqlite_url, llm_delay=delay) as gw:

        async def ask(session_id: str, text: str) -> dict[str, Any]:
            response = await gw.client.post("/message", json=message(session_id, text))
            assert response.status_code == 200, response.text
            return dict(response.json())

        started = time.monotonic()
        await asyncio.gather(ask("same", "one"), ask("same", "two"))
        serial = time.monotonic() - started

        started = time.monotonic()
        await asyncio.gather(ask("left", "one"), ask("right", "two"))
        parallel = time.monotonic() - started

        assert serial >= 2 * delay  # one after the other
        assert parallel < 2 * delay  # side by side: about one delay
        # In one session the later turn saw the earlier one whole, its answer included.
        prompts = [
            [m["content"] for m in r["messages"] if m["role"] != "system"] for r in gw.llm.requests[:2]
        ]
        assert prompts[0] == ["one"] and prompts[1] == ["one", "echo: one", "two"]
        assert len(gw.gateway.sessions) == 0  # idle sessions' locks are gone


async def test_session_locks_do_not_pile_up(in_process: InProcessFactory, sqlite_url: str) -> None:
    async with in_process(sqlite_url, concurrency=64) as gw:
        responses = await asyncio.gather(
            *(gw.client.post("/message", json=message(f"s{i}", "hi")) for i in range(40))
        )
        assert {r.status_code for r in responses} == {200}
        assert len(gw.gateway.sessions) == 0 and gw.gateway.admission.busy == 0


async def test_two_gateway_processes_take_turns_on_one_session(
    in_process: InProcessFactory, postgres_url: str
) -> None:
    """Two gateways on one PostgreSQL database stand for two worker processes: a session's
    requests sprayed across both still run one at a time, each seeing the one before."""
    delay = 0.4
    async with (
        in_process(postgres_url, llm_delay=delay) as one,
        in_process(postgres_url, llm_delay=delay) as two,
    ):

        async def ask(gw: Any, text: str) -> None:
            response = await gw.client.post("/message", json=message("shared", text))
            assert response.status_code == 200, response.text

        started = time.monotonic()
        await asyncio.gather(*(ask((one, two)[i % 2], f"turn {i}") for i in range(4)))
        took = time.monotonic() - started
        assert took >= 4 * delay  # never two turns of the session at once
        stored = await history(postgres_url, "shared")
        assert [m.role for m in stored] == ["user", "assistant"] * 4  # no interleaved halves
        answers = [m.content for m in stored if m.role == "assistant"]
        questions = [m.content for m in stored if m.role == "user"]
        assert answers == [f"echo: {q}" for q in questions]


async def test_each_answer_names_its_request_and_its_log_lines_carry_it(
    in_process: InProcessFactory, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from omni.logging import current_context

    seen: list[object] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name == "agent.llm":
                seen.append(current_context().get("request_id"))

    recorder = Recorder()
    caplog.set_level(logging.INFO, logger="agent.llm")
    logging.getLogger("agent.llm").addHandler(recorder)
    try:
        async with in_process(sqlite_url) as gw:
            ids = []
            for text in ("one", "two"):
                response = await gw.client.post("/message", json=message("ids", text))
                assert response.status_code == 200
                ids.append(response.headers["X-Request-Id"])
    finally:
        logging.getLogger("agent.llm").removeHandler(recorder)
    assert len(set(ids)) == 2 and all(len(i) == 16 for i in ids)
    assert set(ids) <= set(seen)  # the LLM call of each request was logged under its id
