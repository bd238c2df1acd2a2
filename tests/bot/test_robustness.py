"""Whatever Telegram sends, the bot neither crashes nor answers twice (bot in-process)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from bot import media
from omni.settings import Settings
from tests.bot.conftest import FRIEND, STRANGER, bot_running, fakes_in_loop, in_process_bot, settings_for
from tests.fakes.telegram_api import BOT_ID, BOT_USERNAME, FakeTelegram

pytestmark = pytest.mark.anyio

GROUP = -100500


def _odd_updates(tg: FakeTelegram) -> list[dict[str, Any]]:
    """Updates a bot meets in the wild that ask for no answer (or only a short notice)."""
    sender = {"id": FRIEND, "is_bot": False, "first_name": "Ana"}
    private = {"id": FRIEND, "type": "private", "first_name": "Ana"}
    group = {"id": GROUP, "type": "supergroup", "title": "G"}
    return [
        {"edited_message": {**tg.message(FRIEND, "edited text"), "edit_date": 1}},
        {
            "message": tg.message(
                FRIEND,
                None,
                extra={
                    "sticker": {
                        "file_id": "s",
                        "file_unique_id": "s",
                        "width": 1,
                        "height": 1,
                        "is_animated": False,
                        "is_video": False,
                        "type": "regular",
                    }
                },
            )
        },
        {
            "message": tg.message(
                FRIEND,
                None,
                extra={
                    "photo": [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}],
                    "caption": "look",
                },
            )
        },
        {
            "message": tg.message(
                FRIEND, None, extra={"voice": {"file_id": "v", "file_unique_id": "v", "duration": 1}}
            )
        },
        {
            "channel_post": {
                "message_id": 1,
                "date": 1,
                "chat": {"id": -1001, "type": "channel", "title": "C"},
                "text": "news",
            }
        },
        {"callback_query": {"id": "1", "from": sender, "chat_instance": "x", "data": "d"}},
        {
            "my_chat_member": {
                "chat": private,
                "from": sender,
                "date": 1,
                "old_chat_member": {"status": "member", "user": sender},
                "new_chat_member": {"status": "kicked", "user": sender, "until_date": 0},
            }
        },
        {"message": tg.message(FRIEND, "just chatting with friends", GROUP, chat_type="supergroup")},
        {"message": tg.message(STRANGER, "strangers chatting in the group", GROUP, chat_type="supergroup")},
        {"message": {**tg.message(FRIEND, "no chat type"), "chat": group, "new_chat_members": [sender]}},
    ]


async def test_odd_updates_never_crash_and_get_at_most_a_notice(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings) as (tg, llm, _):
        for update in _odd_updates(tg):
            tg.push_update(update)
        tg.push_text(
            FRIEND, "ctrl \x00\x01\x07\x1b chars, RTL \u202e txet, zalgo Z\u0336\u0337a, 🙂" + "x" * 5000
        )
        tg.push_text(FRIEND, f"@{BOT_USERNAME} hello group", GROUP, chat_type="supergroup")
        sent = await tg.messages(6)
        await asyncio.sleep(0.3)
        texts = tg.texts()
        # Sticker, photo (the model has no vision), voice (no transcription model): one notice each.
        notices = (media.UNSUPPORTED_NOTICE, media.NO_VISION_NOTICE.format(model="openai/fake-model"))
        assert all(texts.count(n) == 1 for n in (*notices, media.NO_VOICE_NOTICE))
        group_texts = tg.texts(GROUP)
        assert group_texts == ["echo: [Ana] hello group"]  # only when mentioned; the speaker named
        long_reply = [s for s in sent if s.text.startswith("echo: ctrl")]
        assert len(long_reply) == 1 and len(tg.sent) == 6  # the long echo took two messages
        assert all("chatting" not in str(r) for r in llm.requests)


async def test_reply_to_the_bot_in_a_group_is_answered(make_settings: Callable[..., Settings]) -> None:
    async with in_process_bot(make_settings) as (tg, llm, _):
        ours = {
            "message_id": 1,
            "date": 1,
            "chat": {"id": GROUP, "type": "group", "title": "G"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Omni"},
            "text": "earlier answer",
        }
        tg.push_text(FRIEND, "and then?", GROUP, chat_type="group", reply_to=ours)
        assert (await tg.messages(1))[0].text == "echo: [Ana] and then?"


async def test_an_update_delivered_again_is_not_answered_twice(
    make_settings: Callable[..., Settings],
) -> None:
    async with fakes_in_loop() as fakes:
        tg = fakes.tg
        settings = settings_for(make_settings, fakes)
        update = {"update_id": 77, "message": tg.message(FRIEND, "only once please")}
        async with bot_running(settings):
            tg.push_update(update)
            await tg.messages(1)
        # Telegram re-delivers an update whose confirmation it did not get, e.g. after a restart.
        async with bot_running(settings):
            tg.push_update(update)
            tg.push_text(FRIEND, "next")
            await tg.messages(2)
            await asyncio.sleep(0.3)
        assert tg.texts() == ["echo: only once please", "echo: next"]
        assert len(fakes.llm.requests) == 2


async def test_watchdog_restarts_a_stuck_poll(make_settings: Callable[..., Settings]) -> None:
    async with fakes_in_loop() as fakes:
        tg = fakes.tg
        settings = settings_for(make_settings, fakes)
        async with bot_running(settings):
            tg.push_text(FRIEND, "before")
            await tg.messages(1)
            tg.stall_get_updates(1)  # the next poll hangs forever, as a dead connection can
            calls = len(tg.get_updates_times)
            while len(tg.get_updates_times) == calls:  # noqa: ASYNC110 (the fake has no event for it)
                await asyncio.sleep(0.01)
            pushed = time.monotonic()
            tg.push_text(FRIEND, "after")
            sent = await tg.messages(2)
            assert sent[1].text == "echo: after"
            # PTB alone would wait for its read timeout (poll + 5 s); the watchdog is quicker.
            assert time.monotonic() - pushed < 5.0
