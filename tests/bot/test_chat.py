"""Talking to the bot: answers, order, concurrency, failures, formatting (bot in-process)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from agent.errors import LLMRejected
from bot.format import render
from omni.settings import Settings
from tests.bot.conftest import FRIEND, db_path, in_process_bot, query
from tests.fakes.llm_api import FakeLLM, ScriptedReply
from tests.fakes.telegram_rules import parse_html, utf16_len

pytestmark = pytest.mark.anyio

OTHER = 3003


async def _requests(llm: FakeLLM, n: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while len(llm.requests) < n:
        assert time.monotonic() < deadline, f"the LLM got {len(llm.requests)} requests, expected {n}"
        await asyncio.sleep(0.01)


def _user_texts(request: dict[str, object]) -> list[str]:
    messages = request["messages"]
    assert isinstance(messages, list)
    return [str(m["content"]) for m in messages if m["role"] == "user"]


async def test_a_message_gets_an_answer(make_settings: Callable[..., Settings]) -> None:
    async with in_process_bot(make_settings, llm_delay=0.6) as (tg, llm, settings):
        update_id = tg.push_text(FRIEND, "hello there")
        sent = await tg.messages(1)
        assert sent[0].text == "echo: hello there"
        assert sent[0].chat_id == FRIEND and sent[0].reply_to is None
        assert (FRIEND, "typing") in tg.chat_actions
        await asyncio.sleep(0.1)
        assert query(db_path(settings), "SELECT status FROM updates WHERE update_id = ?", update_id) == [
            ("answered",)
        ]


async def test_chats_run_side_by_side_and_each_keeps_its_order(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings, allowed_ids=f"{FRIEND},{OTHER}") as (tg, llm, _):
        llm.enqueue(ScriptedReply(text="slow answer to A1", delay=1.5))
        tg.push_text(FRIEND, "A1")
        await _requests(llm, 1)
        tg.push_text(FRIEND, "A2")
        tg.push_text(OTHER, "B1")
        sent = await tg.messages(3)
        assert [s.text for s in sent] == ["echo: B1", "slow answer to A1", "echo: A2"]
        assert sent[0].at - tg.push_times[max(tg.push_times)] < 1.0  # B was not held up by A
        a1, a2 = sent[1], sent[2]
        assert a1.reply_to is not None  # A2 arrived in between, so the answer quotes A1
        assert a2.reply_to is None


async def test_llm_failure_gives_a_notice_and_keeps_the_conversation(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings) as (tg, llm, settings):
        llm.enqueue(ScriptedReply(status=401))
        first = tg.push_text(FRIEND, "first question")
        assert (await tg.messages(1))[0].text == LLMRejected.user_message
        tg.push_text(FRIEND, "second question")
        assert (await tg.messages(2))[1].text == "echo: second question"
        last = _user_texts(llm.requests[-1])
        assert last.count("first question") == 1 and last[-1] == "second question"
        rows = query(db_path(settings), "SELECT role, content FROM messages ORDER BY id")
        assert [r[0] for r in rows] == ["user", "user", "assistant"]
        assert query(db_path(settings), "SELECT status FROM updates WHERE update_id = ?", first) == [
            ("failed",)
        ]


async def test_stop_cancels_the_reply_in_progress(make_settings: Callable[..., Settings]) -> None:
    async with in_process_bot(make_settings) as (tg, llm, _):
        llm.enqueue(ScriptedReply(text="a very slow answer", delay=3))
        tg.push_text(FRIEND, "think hard")
        await _requests(llm, 1)
        tg.push_text(FRIEND, "/stop")
        assert (await tg.messages(1))[0].text.startswith("Stopped")
        tg.push_text(FRIEND, "next one")
        sent = await tg.messages(2)
        assert sent[1].text == "echo: next one"
        tg.push_text(FRIEND, "/stop")
        assert (await tg.messages(3))[2].text == "There is nothing to stop right now."
        assert "a very slow answer" not in tg.texts()


async def test_telegram_429_is_waited_out(make_settings: Callable[..., Settings]) -> None:
    async with in_process_bot(make_settings) as (tg, llm, _):
        tg.fail_next("sendMessage", status=429, retry_after=1)
        pushed = time.perf_counter()
        tg.push_text(FRIEND, "hi")
        sent = await tg.messages(1)
        assert sent[0].text == "echo: hi"
        assert sent[0].at - pushed >= 1.0
        assert sum(1 for method, _ in tg.calls if method == "sendMessage") == 2


async def test_html_refused_by_telegram_is_resent_as_plain_text(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings) as (tg, llm, _):
        llm.enqueue(ScriptedReply(text="**bold** claim"))
        tg.fail_next("sendMessage", status=400, description="Bad Request: can't parse entities: test")
        tg.push_text(FRIEND, "hi")
        sent = await tg.messages(1)
        assert sent[0].text == "bold claim" and sent[0].parse_mode is None


async def test_long_markdown_answer_arrives_in_valid_chunks_in_order(
    make_settings: Callable[..., Settings],
) -> None:
    sections = []
    for i in range(25):
        code = "\n".join(f"    total += item_{j}  # section {i} line {j}" for j in range(12))
        sections.append(
            f"## Part {i}\n\nText with **bold** and `code`.\n\n```python\ndef part_{i}():\n{code}\n```\n"
        )
    answer = "\n".join(sections)
    assert len(answer) > 10_000
    expected = len(render(answer))
    # Chunks, not the summary and .md document a long answer gets by default (test_long_answer).
    async with in_process_bot(make_settings, long_answer_messages=expected) as (tg, llm, _):
        llm.enqueue(ScriptedReply(text=answer))
        tg.push_text(FRIEND, "write a lot")
        sent = await tg.messages(expected)
        assert len(sent) == expected >= 3
        shown = [parse_html(s.text) for s in sent]  # the fake accepted them; check again here
        assert all(s.parse_mode == "HTML" for s in sent)
        assert all(utf16_len(text) <= 4096 for text in shown)
        for s in sent:
            assert s.text.count("<pre>") == s.text.count("</pre>")
        parts = [
            int(line.split()[1]) for text in shown for line in text.splitlines() if line.startswith("Part ")
        ]
        assert parts == list(range(25))


async def test_markup_from_the_model_is_shown_literally(make_settings: Callable[..., Settings]) -> None:
    async with in_process_bot(make_settings) as (tg, llm, _):
        llm.enqueue(ScriptedReply(text="<script>alert(1)</script> and 5 < 6 & 7"))
        tg.push_text(FRIEND, "show me")
        sent = await tg.messages(1)
        assert parse_html(sent[0].text) == "<script>alert(1)</script> and 5 < 6 & 7"


async def test_a_telegram_server_error_is_retried(make_settings: Callable[..., Settings]) -> None:
    async with in_process_bot(make_settings) as (tg, llm, _):
        tg.fail_next("sendMessage", status=502, retry_after=None, description="Bad Gateway")
        tg.push_text(FRIEND, "hi")
        assert (await tg.messages(1))[0].text == "echo: hi"
        assert sum(1 for method, _ in tg.calls if method == "sendMessage") == 2
