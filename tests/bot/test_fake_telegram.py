"""The fake Bot API is as strict as the real one where the bot's correctness depends on it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, RetryAfter

from tests.fakes.server import serve
from tests.fakes.telegram_api import TOKEN, FakeTelegram
from tests.fakes.telegram_rules import EntityError, parse_html

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "text",
    ["<script>x</script>", "<b>open", "<b><i>x</b></i>", "5 < 6", "a & b", '<a name="x">y</a>', "</b>"],
)
def test_invalid_html_is_rejected(text: str) -> None:
    with pytest.raises(EntityError):
        parse_html(text)


def test_supported_html_is_parsed_to_what_users_see() -> None:
    text = '<b>b</b> <a href="https://e.com">l</a> <pre><code class="language-py">x &lt; 1</code></pre> &amp;'
    assert parse_html(text) == "b l x < 1 &"


async def test_get_updates_redelivers_until_confirmed_and_validates_send_message() -> None:
    tg = FakeTelegram()
    async with serve(tg.app) as base, httpx.AsyncClient(base_url=f"{base}/bot{TOKEN}") as client:
        first = tg.push_text(1, "one")
        tg.push_text(1, "two")
        got = (await client.post("/getUpdates", data={"timeout": "0"})).json()["result"]
        assert [u["message"]["text"] for u in got] == ["one", "two"]
        again = (await client.post("/getUpdates", json={"offset": first + 1})).json()["result"]
        assert [u["message"]["text"] for u in again] == ["two"]
        bad = await client.post("/sendMessage", data={"chat_id": "1", "text": "<x>", "parse_mode": "HTML"})
        assert bad.status_code == 400 and "can't parse entities" in bad.json()["description"]
        long = await client.post("/sendMessage", json={"chat_id": 1, "text": "x" * 4097})
        assert long.status_code == 400
        tg.fail_next("sendMessage", status=429, retry_after=3)
        limited = (await client.post("/sendMessage", json={"chat_id": 1, "text": "hi"})).json()
        assert limited["error_code"] == 429 and limited["parameters"]["retry_after"] == 3
        assert (await client.post("/sendMessage", json={"chat_id": 1, "text": "hi"})).json()["ok"]
        assert tg.texts() == ["hi"]


# -- what streaming needs: drafts, edits in place, flood limits -----------------------------


async def test_drafts_go_to_private_chats_only_and_are_checked_like_messages() -> None:
    tg = FakeTelegram()
    async with serve(tg.app) as base, Bot(TOKEN, base_url=f"{base}/bot") as bot:
        assert await bot.send_message_draft(1, 7, "Hel", message_thread_id=4)
        assert await bot.send_message_draft(1, 7, "<b>Hello</b>", parse_mode=ParseMode.HTML)
        assert await bot.send_message_draft(1, 8)  # no text: the "Thinking..." placeholder
        refusals = []
        for kwargs in (
            {"chat_id": -100, "draft_id": 7, "text": "a group"},
            {"chat_id": 1, "draft_id": 0, "text": "no id"},
            {"chat_id": 1, "draft_id": 7, "text": "<b>Hel", "parse_mode": ParseMode.HTML},
            {"chat_id": 1, "draft_id": 7, "text": "x" * 4097},
        ):
            with pytest.raises(BadRequest) as refused:
                await bot.send_message_draft(**kwargs)
            refusals.append(refused.value.message)
        async with httpx.AsyncClient(base_url=base) as http:
            seen = (await http.get("/_control/drafts")).json()
            stats = (await http.get("/_control/stats")).json()

    assert refusals[0] == "Textdraft_peer_invalid"  # PTB's rendering of TEXTDRAFT_PEER_INVALID
    assert "non-zero" in refusals[1] and "parse entities" in refusals[2] and "too long" in refusals[3]
    drafts = tg.drafts_for(1)
    assert [(d.draft_id, d.text, d.parse_mode, d.thread_id) for d in drafts] == [
        (7, "Hel", None, 4),
        (7, "<b>Hello</b>", "HTML", None),
        (8, "", None, None),
    ]
    assert tg.drafts_for(-100) == [] and tg.sent == []  # a draft is no message
    assert [d["text"] for d in seen] == ["Hel", "<b>Hello</b>", ""] and stats["drafts"] == 3
    assert [m for m, _ in tg.calls].count("sendMessageDraft") == 7


async def test_edits_and_deletes_answer_as_the_real_server_does() -> None:
    tg = FakeTelegram()
    async with serve(tg.app) as base, Bot(TOKEN, base_url=f"{base}/bot") as bot:
        first = await bot.send_message(1, "Hello")
        other = await bot.send_message(2, "Elsewhere")
        refusals = []
        for kwargs in (
            {"chat_id": 1, "message_id": first.message_id, "text": "Hello"},  # the same text
            {"chat_id": 1, "message_id": 999, "text": "x"},  # never sent
            {"chat_id": 1, "message_id": other.message_id, "text": "x"},  # sent, to another chat
        ):
            with pytest.raises(BadRequest) as refused:
                await bot.edit_message_text(**kwargs)
            refusals.append(refused.value.message)
        await bot.edit_message_text("Hello, world", 1, first.message_id)
        # The same text in another parse mode, or with a keyboard, is a change.
        await bot.edit_message_text("Hello, world", 1, first.message_id, parse_mode=ParseMode.HTML)
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="ok")]])
        await bot.edit_message_text(
            "Hello, world", 1, first.message_id, parse_mode="HTML", reply_markup=keyboard
        )
        assert tg.current_text(1, first.message_id) == "Hello, world"
        second = await bot.send_message(1, "Bye")
        assert await bot.delete_message(1, second.message_id)
        for call in (
            bot.delete_message(1, second.message_id),  # twice
            bot.delete_message(1, 999),
            bot.edit_message_text("x", 1, second.message_id),  # deleted
        ):
            with pytest.raises(BadRequest) as refused:
                await call
            refusals.append(refused.value.message)
        incoming = tg.message(1, "a user's message")["message_id"]
        assert await bot.delete_message(1, incoming)  # bots may delete incoming messages too

    assert refusals[0].startswith("Message is not modified: specified new message content")
    assert refusals[1:3] == ["Message to edit not found"] * 2
    assert refusals[3:] == ["Message to delete not found"] * 2 + ["Message to edit not found"]
    assert tg.current_text(1, second.message_id) is None and tg.current_text(1, 999) is None
    assert tg.deleted == {(1, second.message_id), (1, incoming)}
    assert tg.shown(1) == ["Hello, world"] and tg.shown(2) == ["Elsewhere"]


async def test_the_flood_limit_answers_429_per_chat_with_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # as bot/app.py: RetryAfter.retry_after a timedelta
    tg = FakeTelegram()
    tg.flood(private_per_s=5, group_per_min=20, burst=2)
    async with serve(tg.app) as base, Bot(TOKEN, base_url=f"{base}/bot") as bot:
        await bot.send_message(1, "one")
        await bot.edit_message_text("one, edited", 1, tg.sent[0].message_id)
        with pytest.raises(RetryAfter) as limited:  # the third call at once: over the burst
            await bot.send_message_draft(1, 5, "three")
        await bot.send_message(2, "another chat has its own bucket")
        await asyncio.sleep(0.25)  # a token is back after 200 ms
        await bot.send_message(1, "four")
        await bot.send_message(-100, "a group")
        await bot.send_message(-100, "a group again")
        async with httpx.AsyncClient(base_url=f"{base}/bot{TOKEN}") as client:
            group = (await client.post("/sendMessage", json={"chat_id": -100, "text": "too many"})).json()
            assert (
                await client.post("/sendChatAction", json={"chat_id": -100, "action": "typing"})
            ).is_success
        # From another process: on and off over HTTP.
        async with httpx.AsyncClient(base_url=base) as http:
            config = (await http.post("/_control/config", json={"flood": {"burst": 1}})).json()
            await bot.send_message(3, "one")
            with pytest.raises(RetryAfter):
                await bot.send_message(3, "two")
            assert (await http.post("/_control/config", json={"flood": None})).json() == {"flood": None}
            await bot.send_message(3, "off again")
            stats = (await http.get("/_control/stats")).json()

    assert limited.value.retry_after == timedelta(seconds=1)  # < 200 ms, rounded up to 1 s
    # A group refills at 20 a minute: the next call in 3 s.
    assert group["error_code"] == 429 and group["parameters"] == {"retry_after": 3}
    assert group["description"] == "Too Many Requests: retry after 3"
    assert config == {"flood": {"private_per_s": 1.0, "group_per_min": 20, "burst": 1}}
    assert tg.floods == 3 and stats["floods"] == 3
    assert tg.texts(3) == ["one", "off again"] and tg.drafts == []
