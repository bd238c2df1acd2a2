"""Streamed answers through the real bot: drafts in a private chat, a message edited in place in
a group, valid HTML at every step, Telegram's flood limits kept, /stop and a failing stream
leaving no half answer, and the same stored answer as without streaming."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

import bot.stream
from bot.format import render, to_plain
from omni.settings import Settings
from tests.bot.conftest import FRIEND, db_path, in_process_bot, query
from tests.fakes.llm_api import ScriptedReply
from tests.fakes.telegram_api import BOT_USERNAME, FakeTelegram, Sent

pytestmark = pytest.mark.anyio

GROUP = -1005555

ANSWER = (
    "Here is the **plan** for the week, step by step.\n\n"
    + "".join(f"{i}. Do the thing number {i} with care and patience.\n" for i in range(1, 9))
    + "\nAnd the script:\n\n```python\nfor day in week:\n    print(day)\n```\n\nThat is all."
)


def _in_group(tg: FakeTelegram, text: str) -> int:
    message = tg.message(FRIEND, f"@{BOT_USERNAME} {text}", GROUP, chat_type="supergroup")
    return tg.push_update({"message": message})


async def _answer(tg: FakeTelegram, chat_id: int, needle: str, within: float = 20.0) -> Sent:
    """The message (sent or edited) of ``chat_id`` that carries the finished answer."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = [s for s in tg.sent if s.chat_id == chat_id and needle in s.text]
        if found:
            return found[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no answer with {needle!r}: {[s.text for s in tg.sent]}")


async def test_a_private_answer_streams_as_drafts_then_arrives_whole(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings) as (tg, llm, settings):
        tg.flood()  # Telegram's limits: a preview too many would be refused with 429
        llm.enqueue(ScriptedReply(text=ANSWER, tokens_per_s=60))
        tg.push_text(FRIEND, "plan my week")
        final = await _answer(tg, FRIEND, "That is all")
        drafts = tg.drafts_for(FRIEND)
        assert len(drafts) >= 2, "a 2-second answer shows as a growing draft"
        assert all(d.parse_mode == "HTML" for d in drafts)
        shown = [to_plain(d.text) for d in drafts]
        assert all(len(a) <= len(b) for a, b in zip(shown, shown[1:], strict=False)), "drafts only grow"
        assert to_plain(render(ANSWER)[0]).startswith(shown[0][:12])
        gaps = [b.at - a.at for a, b in zip(drafts, drafts[1:], strict=False)]
        assert all(gap >= 0.9 for gap in gaps), gaps
        assert len({d.draft_id for d in drafts}) == 1  # one draft, animated
        assert tg.floods == 0
        # The finished answer: one message, formatted as without streaming, stored the same.
        assert [s.method for s in tg.sent if s.chat_id == FRIEND] == ["sendMessage"]
        assert final.text == render(ANSWER)[0]
        stored = query(db_path(settings), "SELECT content FROM messages WHERE role = 'assistant'")
        assert stored == [(ANSWER,)]
        # The stream asked for usage: the answer's tokens are counted like any other.
        assert llm.requests[-1]["stream"] is True
        usage = query(db_path(settings), "SELECT completion_tokens FROM usage")
        assert usage and usage[0][0] > 0


async def test_an_unfinished_code_block_is_previewed_closed(make_settings: Callable[..., Settings]) -> None:
    text = "Look:\n\n```python\n" + "".join(f"x{i} = {i}  # < & >\n" for i in range(60)) + "```\nDone."
    async with in_process_bot(make_settings) as (tg, llm, _):
        llm.enqueue(ScriptedReply(text=text, tokens_per_s=120))
        tg.push_text(FRIEND, "code please")
        await _answer(tg, FRIEND, "Done.")
        drafts = tg.drafts_for(FRIEND)
        assert drafts
        # Every preview was accepted as HTML by the fake's Telegram rules (a refused one is not kept).
        attempts = [p for m, p in tg.calls if m == "sendMessageDraft"]
        assert len(attempts) == len(drafts)
        assert any("<pre>" in d.text and "Done." not in d.text for d in drafts)


async def test_quick_answers_arrive_without_a_preview(make_settings: Callable[..., Settings]) -> None:
    async with in_process_bot(make_settings) as (tg, _, _):
        tg.push_text(FRIEND, "hi")
        await _answer(tg, FRIEND, "echo: hi")
        assert tg.drafts_for(FRIEND) == []


async def test_a_group_answer_is_one_message_edited_in_place(make_settings: Callable[..., Settings]) -> None:
    async with in_process_bot(make_settings) as (tg, llm, _):
        tg.flood()
        llm.enqueue(ScriptedReply(text=ANSWER, tokens_per_s=50))
        _in_group(tg, "plan my week")
        final = await _answer(tg, GROUP, "That is all")
        ours = [s for s in tg.sent if s.chat_id == GROUP]
        assert ours[0].method == "sendMessage" and ours[-1].method == "editMessageText"
        assert {s.message_id for s in ours} == {final.message_id}, "one message, edited in place"
        assert len(ours) >= 2
        gaps = [b.at - a.at for a, b in zip(ours, ours[1:-1], strict=False)]
        assert all(gap >= 2.9 for gap in gaps), gaps  # twenty a minute in a group
        assert tg.current_text(GROUP, final.message_id) == render(ANSWER)[0]
        assert tg.floods == 0 and not tg.drafts_for(GROUP)


async def test_flood_waits_are_sat_out_and_the_answer_still_arrives(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.stream, "GROUP_INTERVAL_S", 0.2)  # far above Telegram's limit
    async with in_process_bot(make_settings) as (tg, llm, _):
        tg.flood(group_per_min=20, burst=2)
        llm.enqueue(ScriptedReply(text=ANSWER, tokens_per_s=80))
        _in_group(tg, "plan my week")
        final = await _answer(tg, GROUP, "That is all", within=40)
        assert tg.floods >= 1
        assert tg.current_text(GROUP, final.message_id) == render(ANSWER)[0]
        assert len({s.message_id for s in tg.sent if s.chat_id == GROUP}) == 1


async def test_a_long_answers_preview_never_exceeds_one_message(
    make_settings: Callable[..., Settings],
) -> None:
    long = "\n\n".join(f"Paragraph {i}: " + " ".join(f"word{j}" for j in range(100)) for i in range(20))
    async with in_process_bot(make_settings) as (tg, llm, _):
        llm.enqueue(ScriptedReply(text=long, tokens_per_s=2000))
        _in_group(tg, "write a lot")
        for _ in range(600):
            if any(s.method == "sendDocument" for s in tg.sent):
                break
            await asyncio.sleep(0.05)
        ours = [s for s in tg.sent if s.chat_id == GROUP]
        # The preview message became the summary; the whole answer followed as answer.md.
        assert [s.method for s in ours][-2:] == ["editMessageText", "sendDocument"]
        assert ours[-2].message_id == ours[0].message_id
        previews = [s for s in tg.sent if s.chat_id == GROUP and s.method == "editMessageText"]
        for preview in previews:  # never over one message, whatever the answer's length
            assert len(to_plain(preview.text)) <= 4096


async def test_stop_ends_the_stream_and_removes_the_group_preview(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings) as (tg, llm, settings):
        llm.enqueue(ScriptedReply(text=ANSWER * 3, tokens_per_s=20))
        _in_group(tg, "plan my week")
        preview = await _first(tg, GROUP)
        tg.push_update({"message": tg.message(FRIEND, "/stop", GROUP, chat_type="supergroup")})
        await _answer(tg, GROUP, "Stopped")
        await asyncio.sleep(0.3)
        assert (GROUP, preview.message_id) in tg.deleted
        assert not any("That is all" in s.text for s in tg.sent)
        assert query(db_path(settings), "SELECT count(*) FROM messages WHERE role = 'assistant'") == [(0,)]


async def test_a_stream_cut_off_mid_answer_is_reported_and_leaves_no_preview(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings) as (tg, llm, _):
        llm.enqueue(ScriptedReply(text=ANSWER, tokens_per_s=40, fail_after_tokens=30))
        _in_group(tg, "plan my week")
        preview = await _first(tg, GROUP)
        told = await _answer(tg, GROUP, "language model")
        assert told.method == "sendMessage"
        await asyncio.sleep(0.3)
        assert (GROUP, preview.message_id) in tg.deleted
        assert len(llm.requests) == 1, "text was shown: a retry would start the answer over"


async def test_streaming_off_sends_answers_whole(make_settings: Callable[..., Settings]) -> None:
    async with in_process_bot(make_settings, stream_answers=False) as (tg, llm, _):
        llm.enqueue(ScriptedReply(text=ANSWER, tokens_per_s=200))
        tg.push_text(FRIEND, "plan my week")
        await _answer(tg, FRIEND, "That is all")
        assert tg.drafts_for(FRIEND) == []
        assert "stream" not in llm.requests[-1] or not llm.requests[-1]["stream"]


async def _first(tg: FakeTelegram, chat_id: int, within: float = 10.0) -> Sent:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if found := [s for s in tg.sent if s.chat_id == chat_id]:
            return found[0]
        await asyncio.sleep(0.02)
    raise AssertionError("no preview")


async def test_where_drafts_are_refused_the_preview_is_an_edited_message(
    make_settings: Callable[..., Settings],
) -> None:
    chat = FRIEND + 1  # a chat of its own: the bot remembers refusals per chat for its life
    async with in_process_bot(make_settings, allowed_ids=f"{FRIEND},{chat}") as (tg, llm, _):
        tg.fail_next(
            "sendMessageDraft",
            status=400,
            retry_after=None,
            description="Bad Request: TEXTDRAFT_PEER_INVALID",
        )
        llm.enqueue(ScriptedReply(text=ANSWER, tokens_per_s=60), ScriptedReply(text=ANSWER, tokens_per_s=60))
        tg.push_text(chat, "plan my week")
        final = await _answer(tg, chat, "That is all")
        ours = [s for s in tg.sent if s.chat_id == chat]
        assert ours[0].method == "sendMessage" and {s.message_id for s in ours} == {final.message_id}
        assert tg.shown(chat) == [render(ANSWER)[0]]
        # The next answer in that chat goes straight to an edited message: no draft tried again.
        tg.push_text(chat, "again")
        for _ in range(500):
            if tg.shown(chat) == [render(ANSWER)[0]] * 2:
                break
            await asyncio.sleep(0.02)
        assert [m for m, p in tg.calls if m == "sendMessageDraft" and int(p["chat_id"]) == chat] == [
            "sendMessageDraft"
        ]
        assert tg.shown(chat) == [render(ANSWER)[0]] * 2
