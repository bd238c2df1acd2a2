"""Feedback through the real bot: 👍/👎 reactions and /feedback change what is recalled.

Six equally relevant memories mention Miso; recall keeps five (k2). What was recalled for a
question is read from the system prompt the fake LLM received.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot import feedback
from memory import expansion
from memory.store import Store, open_store
from omni.settings import Settings
from tests.bot.conftest import ADMIN, FRIEND, STRANGER, in_process_bot
from tests.fakes.llm_api import FakeLLM
from tests.fakes.telegram_api import BOT_ID, BOT_USERNAME, FakeTelegram, Sent

pytestmark = pytest.mark.anyio

GROUP = -100777
START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
# The same length and one "Miso" each: the same relevance to "Tell me about Miso", so q decides
# (a tie goes to the newest: "kayak" first, "beach" sixth and left out).
PLACES = ["beach", "garden", "snow", "river", "park", "kayak"]
ABOUT_MISO = "Tell me about Miso"


@asynccontextmanager
async def bot_and_store(
    make_settings: Callable[..., Settings], owner: str
) -> AsyncIterator[tuple[FakeTelegram, FakeLLM, Store, dict[str, int]]]:
    """The bot in-process, a second Store on its database, and ``owner``'s memories of Miso."""
    async with (
        in_process_bot(make_settings) as (tg, llm, settings),
        open_store(settings.database_url) as store,
    ):
        ids = {
            place: await store.episodes.add(
                owner, f"Miso loves the {place}", speaker="user", created_at=START + timedelta(days=i)
            )
            for i, place in enumerate(PLACES)
        }
        yield tg, llm, store, ids


async def say(tg: FakeTelegram, user_id: int, text: str, chat_id: int | None = None, **kw: Any) -> Sent:
    """Send ``text``; the bot's next message."""
    before = len(tg.sent)
    tg.push_text(user_id, text, chat_id, chat_type="private" if chat_id is None else "supergroup", **kw)
    return (await tg.messages(before + 1))[before]


async def ask(
    tg: FakeTelegram, llm: FakeLLM, user_id: int, text: str, chat_id: int | None = None
) -> tuple[Sent, set[str]]:
    """Ask a question; the bot's answer and the places of the memories recalled for it."""
    answer = await say(tg, user_id, text, chat_id)
    system = llm.requests[-1]["messages"][0]["content"]
    return answer, {p for p in PLACES if f"Miso loves the {p}" in system}


async def q_of(store: Store, owner: str, episode_id: int) -> float:
    page, _ = await store.episodes.listing(owner, limit=100)
    return next(e.q for e in page if e.id == episode_id)


async def q_changes(store: Store, owner: str, episode_id: int, old: float = 0.5) -> float:
    """Wait for a silent reaction to take effect: the episode's q once it left ``old``."""
    deadline = time.monotonic() + 10.0
    while (q := await q_of(store, owner, episode_id)) == pytest.approx(old):
        if time.monotonic() > deadline:
            raise TimeoutError(f"q of episode {episode_id} stayed {old}")
        await asyncio.sleep(0.02)
    return q


async def test_a_thumbs_down_drops_an_episode_out_of_the_top_k2(
    make_settings: Callable[..., Settings],
) -> None:
    owner = f"user:{FRIEND}"
    async with bot_and_store(make_settings, owner) as (tg, llm, store, ids):
        _, recalled = await ask(tg, llm, FRIEND, ABOUT_MISO)
        assert recalled == set(PLACES) - {"beach"}

        answer, recalled = await ask(tg, llm, FRIEND, "What about the kayak?")
        assert recalled == {"kayak"}
        sent_before = len(tg.sent)
        tg.push_reaction(FRIEND, answer, ["👎"])
        assert await q_changes(store, owner, ids["kayak"]) == pytest.approx(0.4)

        _, recalled = await ask(tg, llm, FRIEND, ABOUT_MISO)
        assert recalled == set(PLACES) - {"kayak"}  # the unrated beach took its place
        assert len(tg.sent) == sent_before + 1  # the reaction got no reply
        polls = [params for method, params in tg.calls if method == "getUpdates"]
        assert all("message_reaction" in p["allowed_updates"] for p in polls)


async def test_feedback_up_raises_an_episode_into_the_top_k2(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The probe "Remember the beach?" puts "beach" into two more turns, which lowers its idf;
    # with pseudo-relevance feedback's second round (which weighs the place words) BM25 would
    # then rank the beach below the others by itself. Without it the memories stay tied and the
    # learned utility alone decides, which is what this test is about.
    monkeypatch.setattr(expansion, "FEEDBACK_TERMS", 0)
    owner = f"user:{FRIEND}"
    async with bot_and_store(make_settings, owner) as (tg, llm, store, ids):
        _, recalled = await ask(tg, llm, FRIEND, ABOUT_MISO)
        assert "beach" not in recalled

        _, recalled = await ask(tg, llm, FRIEND, "Remember the beach?")
        assert recalled == {"beach"}
        thanks = await say(tg, FRIEND, "/feedback up")
        assert thanks.text == feedback.THANKS.format(how="more")
        assert await q_of(store, owner, ids["beach"]) == pytest.approx(0.6)

        _, recalled = await ask(tg, llm, FRIEND, ABOUT_MISO)
        assert recalled == set(PLACES) - {"garden"}  # beach is in; the oldest of the rest is out


async def test_feedback_down_rates_the_answer_it_replies_to(make_settings: Callable[..., Settings]) -> None:
    owner = f"user:{FRIEND}"
    async with bot_and_store(make_settings, owner) as (tg, llm, store, ids):
        assert (await say(tg, FRIEND, "/feedback down")).text == feedback.NOTHING_TO_RATE  # no answer yet
        assert (await say(tg, FRIEND, "/feedback sideways")).text == feedback.USAGE

        about_river, _ = await ask(tg, llm, FRIEND, "And the river?")
        await ask(tg, llm, FRIEND, "What about the kayak?")
        # A reply to the earlier answer rates that one, not the last.
        river_answer = {
            "message_id": about_river.message_id,
            "date": 1,
            "chat": {"id": FRIEND, "type": "private"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Omni"},
        }
        thanks = await say(tg, FRIEND, "/feedback down", reply_to=river_answer)
        assert thanks.text == feedback.THANKS.format(how="less")

        assert await q_of(store, owner, ids["river"]) == pytest.approx(0.4)
        assert await q_of(store, owner, ids["kayak"]) == pytest.approx(0.5)


async def test_in_a_group_only_allowed_peoples_new_thumbs_count(
    make_settings: Callable[..., Settings],
) -> None:
    owner = f"chat:{GROUP}"
    async with bot_and_store(make_settings, owner) as (tg, llm, store, ids):
        answer, recalled = await ask(tg, llm, FRIEND, f"@{BOT_USERNAME} what about the kayak?", GROUP)
        assert recalled == {"kayak"}
        sent_before = len(tg.sent)

        tg.push_reaction(STRANGER, answer, ["👎"], chat_type="supergroup")  # not allowed: nothing
        tg.push_reaction(FRIEND, answer, ["😂"], chat_type="supergroup")  # not a rating
        tg.push_reaction(FRIEND, answer, [], old=["👍"], chat_type="supergroup")  # taken back: nothing
        tg.push_reaction(ADMIN, answer, ["👎"], chat_type="supergroup")  # anyone allowed, any answer
        # Updates are handled in order, so once the admin's 👎 shows, the others were handled.
        assert await q_changes(store, owner, ids["kayak"]) == pytest.approx(0.4)

        tg.push_reaction(FRIEND, answer, ["👍", "😂"], old=["😂"], chat_type="supergroup")
        assert await q_changes(store, owner, ids["kayak"], old=0.4) == pytest.approx(0.4 + 0.2 * 0.6)

        await asyncio.sleep(0.2)
        assert len(tg.sent) == sent_before  # silent, and no refusal for the stranger
        assert await q_of(store, owner, ids["beach"]) == pytest.approx(0.5)


def test_reward_of_counts_only_newly_added_rating_emoji() -> None:
    from telegram import ReactionTypeCustomEmoji, ReactionTypeEmoji

    def emoji(*names: str) -> list[ReactionTypeEmoji]:
        return [ReactionTypeEmoji(n) for n in names]

    assert feedback.reward_of([], emoji("👍")) == 1.0
    assert feedback.reward_of([], emoji("❤\ufe0f")) == 1.0
    assert feedback.reward_of(emoji("👍"), emoji("👎")) == 0.0
    assert feedback.reward_of(emoji("👍"), emoji("👍", "🤔")) is None
    assert feedback.reward_of(emoji("👍"), []) is None
    assert feedback.reward_of([], emoji("👍", "👎")) is None
    assert feedback.reward_of([], [ReactionTypeCustomEmoji("123")]) is None
