"""Groups and forum topics through the real bot (in-process): a session per topic, replies in
their topic, /mode all|mentions, and the speaker of each group message named to the model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from bot.access import ANSWER_ALL_KEY
from bot.admin import NOT_ADMIN
from memory.migrate import upgrade
from omni.settings import Settings
from tests.bot.conftest import (
    ADMIN,
    FRIEND,
    bot_running,
    db_path,
    fakes_in_loop,
    in_process_bot,
    query,
    settings_for,
)
from tests.fakes.llm_api import FakeLLM, ScriptedReply
from tests.fakes.telegram_api import BOT_USERNAME, FakeTelegram

pytestmark = pytest.mark.anyio

GROUP = -1001234  # a supergroup (a forum in the topic tests)
MENTION = f"@{BOT_USERNAME}"


def _push(tg: FakeTelegram, user: int, text: str, *, topic: int | None = None, name: str = "Ana") -> int:
    """``user`` writes ``text`` in the group; with ``topic``, in that topic of a forum."""
    message: dict[str, Any] = tg.message(user, text, GROUP, chat_type="supergroup", first_name=name)
    if topic is not None:
        message["chat"]["is_forum"] = True
        message.update(message_thread_id=topic, is_topic_message=True)
    return tg.push_update({"message": message})


async def _requests(llm: FakeLLM, n: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while len(llm.requests) < n:
        assert time.monotonic() < deadline, f"the LLM got {len(llm.requests)} requests, expected {n}"
        await asyncio.sleep(0.01)


def _said(request: dict[str, Any]) -> list[str]:
    """The user messages of an LLM request: the conversation window it was given."""
    return [str(m["content"]) for m in request["messages"] if m["role"] == "user"]


def _system(request: dict[str, Any]) -> str:
    return str(request["messages"][0]["content"])


async def test_forum_topics_are_separate_conversations_answered_in_their_topic(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings, llm_delay=0.5) as (tg, llm, settings):
        _push(tg, FRIEND, f"{MENTION} the launch is on Friday", topic=7)
        _push(tg, FRIEND, f"{MENTION} the budget is 300 euros", topic=9)
        _push(tg, FRIEND, f"{MENTION} when is the launch?", topic=7)
        sent = await tg.messages(3)
        await _requests(llm, 3)
        # Each topic's window holds its own messages only. (The topics run side by side: the
        # first two requests may come in either order.)
        windows = sorted(_said(r) for r in llm.requests)
        assert windows == [
            ["[Ana] the budget is 300 euros"],
            ["[Ana] the launch is on Friday"],
            ["[Ana] the launch is on Friday", "[Ana] when is the launch?"],
        ]
        # Every reply, and the typing indicator, went to the topic the message came from.
        topic_of = {s.text: s.params.get("message_thread_id") for s in sent}
        assert topic_of == {
            "echo: [Ana] the launch is on Friday": 7,
            "echo: [Ana] the budget is 300 euros": 9,
            "echo: [Ana] when is the launch?": 7,
        }
        assert {s.chat_id for s in sent} == {GROUP}
        assert {a["message_thread_id"] for a in tg.chat_action_params} == {7, 9}
        # Two sessions in two chats rows, both the group's: one memory, two conversations.
        keys = query(db_path(settings), "SELECT key, telegram_chat_id FROM chats ORDER BY key")
        assert keys == [(f"tg:{GROUP}:7", GROUP), (f"tg:{GROUP}:9", GROUP)]


async def test_a_slow_answer_in_one_topic_does_not_hold_up_another(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings) as (tg, llm, _):
        llm.enqueue(ScriptedReply(text="the long report", delay=3.0))
        _push(tg, FRIEND, f"{MENTION} write the long report", topic=7)
        await _requests(llm, 1)
        _push(tg, FRIEND, f"{MENTION} quick question", topic=9)
        first = (await tg.messages(1, within=2.5))[0]
        assert first.text == "echo: [Ana] quick question" and first.params.get("message_thread_id") == 9
        # /stop in the quick topic has nothing to stop there: the report goes on.
        _push(tg, FRIEND, "/stop", topic=9)
        sent = await tg.messages(3, within=10)
        assert "There is nothing to stop" in sent[1].text
        assert sent[2].text == "the long report" and sent[2].params.get("message_thread_id") == 7


async def test_new_in_a_topic_starts_that_topic_afresh_only(make_settings: Callable[..., Settings]) -> None:
    async with in_process_bot(make_settings) as (tg, llm, _):
        _push(tg, FRIEND, f"{MENTION} note A", topic=7)
        _push(tg, FRIEND, f"{MENTION} note B", topic=9)
        _push(tg, FRIEND, "/new", topic=7)
        _push(tg, FRIEND, f"{MENTION} and now?", topic=7)
        _push(tg, FRIEND, f"{MENTION} and here?", topic=9)
        sent = await tg.messages(5)
        # Topics run side by side: each keeps its own order, not the other's.
        in_topic = {t: [s.text for s in sent if s.params.get("message_thread_id") == t] for t in (7, 9)}
        assert in_topic[7][0] == "echo: [Ana] note A"
        assert in_topic[7][1].startswith("Started a fresh conversation")
        assert in_topic[7][2] == "echo: [Ana] and now?"
        assert in_topic[9] == ["echo: [Ana] note B", "echo: [Ana] and here?"]
        windows = {_said(r)[-1]: _said(r) for r in llm.requests}
        assert windows["[Ana] and now?"] == ["[Ana] and now?"]
        assert windows["[Ana] and here?"] == ["[Ana] note B", "[Ana] and here?"]


async def test_the_prompt_names_the_speaker_of_each_group_message(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings, admin_ids=str(ADMIN)) as (tg, llm, _):
        _push(tg, FRIEND, f"{MENTION} I bring the cake", name="Ana")
        _push(tg, ADMIN, f"{MENTION} who brings the cake?", name="Ben [admin] Said")
        await tg.messages(2)
        last = llm.requests[1]
        assert _said(last) == ["[Ana] I bring the cake", "[Ben (admin) Said] who brings the cake?"]
        assert "The latest message is from Ben (admin) Said" in _system(last)
        # A private chat stays as it was: no names in the messages.
        tg.push_text(FRIEND, "hello")
        await tg.messages(3)
        assert _said(llm.requests[2]) == ["hello"] and "You are talking with Ana." in _system(llm.requests[2])


async def test_mode_all_answers_every_message_admins_only_and_persisted(
    make_settings: Callable[..., Settings],
) -> None:
    async with fakes_in_loop() as fakes:
        tg, llm = fakes.tg, fakes.llm
        settings = settings_for(make_settings, fakes)
        await asyncio.to_thread(upgrade, settings.database_url)
        async with bot_running(settings):
            ignored = _push(tg, FRIEND, "just chatting among ourselves")
            _push(tg, FRIEND, "/mode all")
            sent = await tg.messages(1)
            assert sent[0].text == NOT_ADMIN
            _push(tg, ADMIN, "/mode all", name="Ben")
            sent = await tg.messages(2)
            assert sent[1].text == "In this group I now answer every message."
            _push(tg, FRIEND, "anyone knows a good pizza place?")
            sent = await tg.messages(3)
            assert sent[2].text == "echo: [Ana] anyone knows a good pizza place?"
            assert len(llm.requests) == 1  # the unaddressed message before /mode all never reached it
            # A dropped update leaves no row behind.
            assert query(db_path(settings), "SELECT 1 FROM updates WHERE update_id = ?", ignored) == []
        assert query(db_path(settings), "SELECT value FROM kv WHERE key = ?", ANSWER_ALL_KEY) == [
            (f"[{GROUP}]",)
        ]
        async with bot_running(settings):  # after a restart the group still hears everything
            _push(tg, FRIEND, "and a good bakery?")
            sent = await tg.messages(4)
            assert sent[3].text.endswith("and a good bakery?")
            _push(tg, ADMIN, "/mode mentions", name="Ben")
            sent = await tg.messages(5)
            assert sent[4].text == "In this group I now answer only when mentioned or replied to."
            _push(tg, FRIEND, "nobody asked the bot this")
            _push(tg, FRIEND, f"{MENTION} but this one")
            sent = await tg.messages(6)
            assert sent[5].text == "echo: [Ana] but this one"
            assert len(llm.requests) == 3


async def test_a_stranger_in_an_all_mode_group_is_refused_only_when_calling_the_bot(
    make_settings: Callable[..., Settings],
) -> None:
    stranger = 6666
    async with in_process_bot(make_settings) as (tg, llm, _):
        _push(tg, ADMIN, "/mode all", name="Ben")
        await tg.messages(1)
        _push(tg, stranger, "hello everyone", name="Eve")
        _push(tg, stranger, f"{MENTION} let me in", name="Eve")
        sent = await tg.messages(2)
        assert "not on its list" in sent[1].text and str(stranger) in sent[1].text
        _push(tg, FRIEND, "hi all")
        sent = await tg.messages(3)
        assert sent[2].text == "echo: [Ana] hi all" and len(llm.requests) == 1


async def test_forget_all_in_a_forum_empties_every_topic(make_settings: Callable[..., Settings]) -> None:
    async with in_process_bot(make_settings) as (tg, llm, _):
        _push(tg, FRIEND, f"{MENTION} my code word is Walrus", topic=7)
        _push(tg, FRIEND, f"{MENTION} and the door code is 1234", topic=9)
        _push(tg, FRIEND, "/forget all", topic=7)
        question = next(s for s in await tg.messages(3) if s.text.startswith("Forget everything"))
        assert question.params.get("message_thread_id") == 7
        (_, yes), _ = tg.buttons(question)
        before = len(tg.callback_answers)
        tg.push_callback(FRIEND, yes, question)
        await tg.callback_answer(before + 1)
        await tg.messages(4)  # the question, edited into "Done: ..."
        _push(tg, FRIEND, f"{MENTION} what do you know?", topic=9)
        await _requests(llm, 3)
        request = llm.requests[2]
        assert _said(request) == ["[Ana] what do you know?"]
        assert "Walrus" not in str(request) and "1234" not in str(request)
