"""Delivery of an answer's chunks: each recorded as Telegram acknowledges it, a replay sends only
the rest, and a chunk that may have arrived is never sent twice (a real PTB bot, the fake Bot
API in this loop, a real SQLite store)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from telegram import Bot
from telegram.error import NetworkError, TimedOut

from bot import delivery
from memory import Store, open_store
from memory.migrate import upgrade
from memory.types import NewMessage
from tests.fakes.server import serve
from tests.fakes.telegram_api import TOKEN, FakeTelegram

pytestmark = pytest.mark.anyio

CHAT = 4242
CHUNKS = ["<b>one</b>", "two", "three"]


@dataclass
class Setup:
    tg: FakeTelegram
    bot: Bot
    store: Store
    answer_id: int
    update_id: int = 7

    async def deliver(self, *, replayed: bool) -> None:
        await delivery.deliver(
            self.bot,
            self.store.updates,
            CHAT,
            CHUNKS,
            update_id=self.update_id,
            answer_id=self.answer_id,
            replayed=replayed,
        )

    def sends(self) -> int:
        return sum(1 for method, _ in self.tg.calls if method == "sendMessage")


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'omni.db'}"
    await asyncio.to_thread(upgrade, url)
    tg = FakeTelegram()
    async with serve(tg.app) as base, open_store(url) as store, Bot(TOKEN, base_url=f"{base}/bot") as bot:
        ref = await store.conversations.current(f"tg:{CHAT}", telegram_chat_id=CHAT)
        answer_id = await store.conversations.add_answer(
            ref.session_id, NewMessage("assistant", "the answer")
        )
        setup = Setup(tg, bot, store, answer_id)
        await store.updates.arrive(setup.update_id, "boot-a", chat_id=CHAT, user_id=CHAT, payload=None)
        yield setup


async def _until(condition: object, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_replay_sends_only_the_chunks_not_recorded(setup: Setup) -> None:
    tg, ledger = setup.tg, setup.store.updates
    tg.break_send(2, accepted=False, hang=True)  # chunk 2 never reaches Telegram
    first = asyncio.create_task(setup.deliver(replayed=False))
    await _until(lambda: tg.broken_sends == 1)
    first.cancel()  # the process dies while chunk 2 is on its way
    with pytest.raises(asyncio.CancelledError):
        await first
    assert tg.texts() == CHUNKS[:1]
    assert await ledger.delivered(setup.answer_id) == [tg.sent[0].message_id]
    assert await ledger.status(setup.update_id) == "processing"

    await setup.deliver(replayed=True)
    assert tg.texts() == CHUNKS  # each chunk once, in order
    assert await ledger.delivered(setup.answer_id) == [s.message_id for s in tg.sent]
    assert await ledger.status(setup.update_id) == "answered"


async def test_an_answer_recorded_in_full_is_closed_without_sending(setup: Setup) -> None:
    await setup.store.updates.record_sent(setup.answer_id, [11, 12, 13])
    await setup.deliver(replayed=True)
    assert setup.sends() == 0
    assert await setup.store.updates.status(setup.update_id) == "answered"
    assert await setup.store.updates.delivered(setup.answer_id) == [11, 12, 13]


async def test_a_chunk_that_may_have_arrived_is_not_sent_again_and_the_rest_follows(setup: Setup) -> None:
    tg = setup.tg
    tg.break_send(2, accepted=True)  # Telegram shows chunk 2, but its answer is lost on the way
    await setup.deliver(replayed=False)
    assert tg.texts() == CHUNKS and setup.sends() == 3
    first, _, third = (s.message_id for s in tg.sent)
    assert await setup.store.updates.delivered(setup.answer_id) == [first, None, third]
    assert await setup.store.updates.status(setup.update_id) == "answered"


def _raised(error: NetworkError, cause: BaseException) -> NetworkError:
    error.__cause__ = cause  # as PTB raises them: ``raise TimedOut from err``
    return error


@pytest.mark.parametrize(
    ("error", "maybe"),
    [
        (_raised(TimedOut(), httpx.ReadTimeout("read")), True),
        (_raised(NetworkError("httpx.RemoteProtocolError"), httpx.RemoteProtocolError("gone")), True),
        (_raised(NetworkError("httpx.ReadError"), httpx.ReadError("reset")), True),
        (_raised(TimedOut(), httpx.ConnectTimeout("connect")), False),
        (_raised(TimedOut("Pool timeout"), httpx.PoolTimeout("pool")), False),
        (_raised(NetworkError("httpx.ConnectError"), httpx.ConnectError("refused")), False),
        (NetworkError("Bad Gateway"), False),  # Telegram answered: it did not take the message
    ],
)
def test_only_a_send_that_left_this_machine_may_have_arrived(error: NetworkError, maybe: bool) -> None:
    assert delivery.maybe_delivered(error) is maybe
