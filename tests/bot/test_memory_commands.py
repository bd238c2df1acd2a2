"""/memory and /forget through the real bot: listing, paging, deleting, the confirmation button."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import buttons, commands
from memory.knowledge import INDEX_FILE, Document, KnowledgeIndex, Stamp, user_root
from memory.store import Store, open_store
from omni.settings import Settings
from tests.bot.conftest import ADMIN, FRIEND, STRANGER, in_process_bot
from tests.fakes.llm_api import FakeLLM
from tests.fakes.telegram_api import FakeTelegram, Sent
from tests.fakes.telegram_rules import parse_html, utf16_len

pytestmark = pytest.mark.anyio

OTHER = 3003
GROUP = -100123
START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@asynccontextmanager
async def bot_and_store(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[FakeTelegram, FakeLLM, Store]]:
    """The bot in-process, and a second Store on its database to seed and inspect memory."""
    async with (
        in_process_bot(make_settings, allowed_ids=f"{FRIEND},{OTHER}") as (tg, llm, settings),
        open_store(settings.database_url) as store,
    ):
        for user_id in (FRIEND, OTHER):
            await store.users.touch(user_id, display_name="Ana", username=None, is_admin=False)
        yield tg, llm, store


async def seed(store: Store, owner: str, texts: list[str]) -> list[int]:
    """Episodes for ``owner``, a day apart, the last one the newest."""
    return [
        await store.episodes.add(owner, text, speaker="user", created_at=START + timedelta(days=i))
        for i, text in enumerate(texts)
    ]


async def say(
    tg: FakeTelegram, user_id: int, text: str, chat_id: int | None = None, chat_type: str = "private"
) -> Sent:
    """Send ``text`` and wait for the next message the bot sends or edits."""
    before = len(tg.sent)
    tg.push_text(user_id, text, chat_id, chat_type=chat_type)
    return (await tg.messages(before + 1))[before]


async def press(tg: FakeTelegram, user_id: int, data: str, message: Sent) -> dict[str, object]:
    """Press a button and wait for the bot to answer the press; the answer's parameters."""
    before = len(tg.callback_answers)
    tg.push_callback(user_id, data, message)
    return await tg.callback_answer(before + 1)


def shown(sent: Sent) -> str:
    """What the user sees (and checks that Telegram accepts it)."""
    text = parse_html(sent.text) if sent.parse_mode == "HTML" else sent.text
    assert utf16_len(text) <= 4096
    return text


async def test_memory_lists_the_callers_episodes_newest_first_and_pages(
    make_settings: Callable[..., Settings],
) -> None:
    async with bot_and_store(make_settings) as (tg, _, store):
        mine = await seed(store, f"user:{FRIEND}", [f"note {i} <b>&" + "x" * 300 for i in range(12)])
        await seed(store, f"user:{OTHER}", ["the other user's secret"])

        first = await say(tg, FRIEND, "/memory")
        text = shown(first)
        assert "1–10 of 12" in text and "secret" not in text
        lines = [line for line in text.splitlines() if line.startswith("#")]
        assert len(lines) == 10
        assert lines[0].startswith(f"#{mine[-1]} 2025-03-12 user: note 11 <b>&xxx")
        assert lines[0].endswith("…") and len(lines[0]) < 200
        assert tg.buttons(first) == [("older ›", f"mem:{FRIEND}:10")]

        # Someone else can't page it; the message stays as it was.
        refused = await press(tg, OTHER, f"mem:{FRIEND}:10", first)
        assert refused["text"] == buttons.NOT_YOURS
        await press(tg, FRIEND, f"mem:{FRIEND}:10", first)
        older = (await tg.messages(2))[1]
        assert older.method == "editMessageText" and older.message_id == first.message_id
        assert "11–12 of 12" in shown(older)
        assert f"#{mine[0]} 2025-03-01 user: note 0" in shown(older)
        assert tg.buttons(older) == [("‹ newer", f"mem:{FRIEND}:0")]

        await press(tg, FRIEND, f"mem:{FRIEND}:0", older)
        assert "1–10 of 12" in shown((await tg.messages(3))[2])


async def test_memory_when_empty_says_so_and_how_it_fills(make_settings: Callable[..., Settings]) -> None:
    async with bot_and_store(make_settings) as (tg, _, store):
        await seed(store, f"user:{OTHER}", ["not yours"])
        sent = await say(tg, FRIEND, "/memory")
        assert "don't remember anything about you yet" in shown(sent)
        assert tg.buttons(sent) == []


async def test_forget_one_removes_only_the_callers_episode(make_settings: Callable[..., Settings]) -> None:
    async with bot_and_store(make_settings) as (tg, _, store):
        (mine,) = await seed(store, f"user:{FRIEND}", ["my dog is called Miso"])
        (theirs,) = await seed(store, f"user:{OTHER}", ["their cat is called Tofu"])

        assert "not found" in (await say(tg, FRIEND, f"/forget {theirs}")).text
        assert (await say(tg, FRIEND, "/forget")).text == commands.FORGET_USAGE
        assert (await say(tg, FRIEND, "/forget soon")).text == commands.FORGET_USAGE
        assert (await say(tg, FRIEND, f"/forget #{mine}")).text == f"Forgotten: 1 memory (#{mine})."
        assert "not found" in (await say(tg, FRIEND, f"/forget {mine}")).text

        assert "don't remember anything" in shown(await say(tg, FRIEND, "/memory"))
        assert "Tofu" in shown(await say(tg, OTHER, "/memory"))


async def test_forget_all_asks_and_forgets_on_the_button(make_settings: Callable[..., Settings]) -> None:
    async with bot_and_store(make_settings) as (tg, _, store):
        await seed(store, f"user:{FRIEND}", ["one", "two", "three"])
        await seed(store, f"user:{OTHER}", ["kept"])
        tg.push_text(FRIEND, "hello")  # a conversation to forget as well
        await tg.messages(1)

        question = await say(tg, FRIEND, "/forget all")
        assert "Forget everything" in question.text
        (yes, yes_data), (cancel, _) = tg.buttons(question)
        assert yes == "Yes, forget everything" and cancel == "Cancel"

        # Another user's press does nothing, and leaves the button working.
        assert (await press(tg, OTHER, yes_data, question))["text"] == buttons.NOT_YOURS
        assert (await store.episodes.listing(f"user:{FRIEND}"))[1] >= 3

        before = len(tg.sent)
        await press(tg, FRIEND, yes_data, question)
        done = (await tg.messages(before + 1))[before]
        assert done.method == "editMessageText" and done.message_id == question.message_id
        assert done.text.startswith("Done: I forgot") and "memories" in done.text
        assert tg.buttons(done) == []

        # Used once: pressing again is stale, and nothing more happens.
        assert (await press(tg, FRIEND, yes_data, question))["text"] == commands.STALE
        assert "don't remember anything" in shown(await say(tg, FRIEND, "/memory"))
        assert "kept" in shown(await say(tg, OTHER, "/memory"))
        page, total = await store.episodes.listing(f"user:{OTHER}")
        assert total == 1 and page[0].text == "kept"

        # The conversation goes on in a fresh session.
        assert (await say(tg, FRIEND, "are you there?")).text == "echo: are you there?"


async def test_forget_all_cancel_keeps_everything_and_buttons_expire(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with bot_and_store(make_settings) as (tg, _, store):
        await seed(store, f"user:{FRIEND}", ["one", "two"])

        question = await say(tg, FRIEND, "/forget all")
        (_, yes_data), (_, cancel_data) = tg.buttons(question)
        before = len(tg.sent)
        await press(tg, FRIEND, cancel_data, question)
        assert (await tg.messages(before + 1))[before].text.startswith("Cancelled")
        assert (await press(tg, FRIEND, yes_data, question))["text"] == commands.STALE

        monkeypatch.setattr(commands, "CONFIRM_TTL_S", 0.05)
        question = await say(tg, FRIEND, "/forget all")
        (_, yes_data), _ = tg.buttons(question)
        await asyncio.sleep(0.1)
        assert (await press(tg, FRIEND, yes_data, question))["text"] == commands.STALE
        for _ in range(500):  # the buttons go in an edit made after the answer to the press
            if not tg.buttons(question):
                break
            await asyncio.sleep(0.01)
        assert tg.buttons(question) == []
        assert (await store.episodes.listing(f"user:{FRIEND}"))[1] == 2


async def test_a_stranger_pressing_a_button_gets_nothing(make_settings: Callable[..., Settings]) -> None:
    async with bot_and_store(make_settings) as (tg, _, store):
        await seed(store, f"user:{FRIEND}", ["one"])
        question = await say(tg, FRIEND, "/forget all")
        (_, yes_data), _ = tg.buttons(question)
        assert "text" not in await press(tg, STRANGER, yes_data, question)
        assert (await store.episodes.listing(f"user:{FRIEND}"))[1] == 1


async def test_in_a_group_memory_is_the_groups(make_settings: Callable[..., Settings]) -> None:
    async with bot_and_store(make_settings) as (tg, _, store):
        await seed(store, f"chat:{GROUP}", ["the team meets on Mondays"])
        await seed(store, f"user:{FRIEND}", ["private matter"])
        text = shown(await say(tg, FRIEND, "/memory", GROUP, chat_type="group"))
        assert "about this chat" in text and "Mondays" in text and "private" not in text


async def test_status_shows_episodes_and_help_lists_the_commands(
    make_settings: Callable[..., Settings],
) -> None:
    async with bot_and_store(make_settings) as (tg, _, store):
        await seed(store, f"user:{FRIEND}", ["one", "two"])
        await seed(store, f"user:{OTHER}", ["three"])
        status = (await say(tg, ADMIN, "/status")).text
        assert f"memory: {await store.episodes.count()} episodes" in status and "database: " in status
        help_text = shown(await say(tg, FRIEND, "/help"))
        assert "/memory" in help_text and "/forget" in help_text


async def test_forget_all_drops_the_knowledge_index_copies_of_the_users_files(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    index_path = tmp_path / "data" / INDEX_FILE
    secret = "plumtreequartz"
    with KnowledgeIndex(index_path) as index:
        for user, text in ((FRIEND, f"my notes say {secret}"), (OTHER, "the other user's notes")):
            doc = Document(path="notes.md", stamp=Stamp(1, len(text)), text=text)
            index.apply(user_root(user), [doc])
    async with bot_and_store(make_settings) as (tg, _, store):
        await seed(store, f"user:{FRIEND}", ["one"])
        question = await say(tg, FRIEND, "/forget all")
        (_, yes_data), _ = tg.buttons(question)
        before = len(tg.sent)
        await press(tg, FRIEND, yes_data, question)
        assert (await tg.messages(before + 1))[before].text.startswith("Done: I forgot")
    with KnowledgeIndex(index_path) as index:
        assert index.count(user_root(FRIEND)) == 0 and index.count(user_root(OTHER)) == 1
    files = [p for p in index_path.parent.glob(f"{INDEX_FILE}*") if p.is_file()]
    assert files and not any(secret.encode() in p.read_bytes() for p in files)
