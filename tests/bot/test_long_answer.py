"""An answer too long for a few messages arrives as a summary message and an ``answer.md``
document holding the whole answer (the rendering, the real bot in-process, a delivery that is
interrupted and replayed against the fake Bot API and a real SQLite store)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from telegram import Bot

from bot import delivery, long_answer
from bot.format import CHUNK_LIMIT, is_valid_html, render, to_plain, utf16_len
from memory import Store, open_store
from memory.migrate import upgrade
from memory.types import NewMessage
from omni.settings import Settings
from tests.bot.conftest import FRIEND, db_path, in_process_bot, query
from tests.fakes.llm_api import ScriptedReply
from tests.fakes.server import serve
from tests.fakes.telegram_api import TOKEN, FakeTelegram

pytestmark = pytest.mark.anyio

FIRST = "Here is **the plan** in short: three phases, each with its checks."
PARTS = (f"## Part {i}\n\n" + " ".join(f"w{i}-{j}" for j in range(700)) for i in range(4))
LONG = FIRST + "\n\n" + "\n\n".join(PARTS)
CHAT = 4242


def test_an_answer_within_the_threshold_is_its_chunks() -> None:
    chunks = render(LONG)
    assert len(chunks) > 3
    assert long_answer.parts(LONG, len(chunks)) == chunks
    assert long_answer.parts("short", 1) == ["short"]


def test_a_longer_answer_is_a_summary_and_the_whole_text_as_markdown() -> None:
    summary, document = long_answer.parts(LONG, 3)
    assert summary == "Here is <b>the plan</b> in short: three phases, each with its checks."
    assert isinstance(document, delivery.Upload) and not document.photo
    assert document.filename == "answer.md" and document.data.decode("utf-8") == LONG
    assert long_answer.parts(LONG, 3) == [summary, document]  # the same parts on a replay


@pytest.mark.parametrize(
    "first",
    [
        "word " * 2000,  # one paragraph far over the summary's length
        "```python\n" + "x = 1\n" * 400,  # an unclosed code fence, cut inside it
        "**bold that never closes " + "and <tags> & more " * 100,
        "x" * 5000,  # no space to cut at
    ],
)
def test_the_summary_is_one_short_valid_message(first: str) -> None:
    summary = long_answer.summary(first + "\n\nrest")
    assert is_valid_html(summary)
    assert 0 < utf16_len(to_plain(summary)) <= long_answer.SUMMARY_CHARS + 2 <= CHUNK_LIMIT


async def test_a_long_answer_arrives_as_a_summary_and_a_document(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings) as (tg, llm, settings):
        llm.enqueue(ScriptedReply(text=LONG))
        update_id = tg.push_text(FRIEND, "the whole plan, please")
        sent = await tg.messages(2)
        assert [s.method for s in sent] == ["sendMessage", "sendDocument"]
        assert sent[0].text == long_answer.summary(LONG) and sent[0].parse_mode == "HTML"
        [(method, upload, caption)] = tg.files(FRIEND)
        assert (method, upload.filename, caption) == ("sendDocument", "answer.md", long_answer.CAPTION)
        assert upload.data.decode("utf-8") == LONG
        db = db_path(settings)
        deadline = time.monotonic() + 5
        while query(db, "SELECT status FROM updates WHERE update_id = ?", update_id) != [("answered",)]:
            assert time.monotonic() < deadline, "the update was not closed"
            await asyncio.sleep(0.02)
        [(stored,)] = query(db, "SELECT sent_message_ids FROM messages WHERE role = 'assistant'")
        assert stored == f"[{sent[0].message_id}, {sent[1].message_id}]"


@pytest.fixture
async def store_and_bot(tmp_path: Path) -> AsyncIterator[tuple[FakeTelegram, Bot, Store, int]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'omni.db'}"
    await asyncio.to_thread(upgrade, url)
    tg = FakeTelegram()
    async with serve(tg.app) as base, open_store(url) as store, Bot(TOKEN, base_url=f"{base}/bot") as bot:
        ref = await store.conversations.current(f"tg:{CHAT}", telegram_chat_id=CHAT)
        answer_id = await store.conversations.add_answer(ref.session_id, NewMessage("assistant", LONG))
        await store.updates.arrive(7, "boot-a", chat_id=CHAT, user_id=CHAT, payload=None)
        yield tg, bot, store, answer_id


async def test_a_replay_after_the_summary_sends_only_the_document(
    store_and_bot: tuple[FakeTelegram, Bot, Store, int],
) -> None:
    tg, bot, store, answer_id = store_and_bot

    async def deliver(replayed: bool) -> None:
        parts = long_answer.parts(LONG, 3)
        await delivery.deliver(
            bot, store.updates, CHAT, parts, update_id=7, answer_id=answer_id, replayed=replayed
        )

    # Telegram makes the document wait (429 with a long retry_after): the process dies meanwhile.
    tg.fail_for("sendDocument", 30, status=429, retry_after=30)
    first = asyncio.create_task(deliver(replayed=False))
    deadline = time.monotonic() + 5
    while not any(method == "sendDocument" for method, _ in tg.calls):
        assert time.monotonic() < deadline, "the document was never tried"
        await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    [summary] = tg.sent
    assert await store.updates.delivered(answer_id) == [summary.message_id]

    tg.fail_for("sendDocument", 0)  # the outage is over
    await deliver(replayed=True)
    assert [s.method for s in tg.sent] == ["sendMessage", "sendDocument"]  # the summary once
    assert [upload.data for _, upload, _ in tg.files()] == [LONG.encode("utf-8")]
    assert await store.updates.delivered(answer_id) == [s.message_id for s in tg.sent]
    assert await store.updates.status(7) == "answered"


def test_the_summary_passes_over_headings() -> None:
    assert long_answer.summary("# Plan\n\n## Phase one\n\nFirst, *measure*.\n\nThen cut.") == (
        "First, <i>measure</i>."
    )
