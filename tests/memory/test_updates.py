"""The ledger records an answer's delivery chunk by chunk, so a replay knows where to resume."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from memory import Store
from memory.types import NewMessage

pytestmark = pytest.mark.anyio


async def test_chunks_are_recorded_one_by_one_and_read_back_for_a_replay(store: Store) -> None:
    ledger = store.updates
    ref = await store.conversations.current("tg:5", telegram_chat_id=5)
    answer = await store.conversations.add_answer(ref.session_id, NewMessage("assistant", "a long answer"))
    other = await store.conversations.add_answer(ref.session_id, NewMessage("assistant", "another"))
    assert await ledger.arrive(1, "boot-a", chat_id=5, user_id=5, payload={"update_id": 1})
    assert await ledger.delivered(answer) == []  # nothing sent yet: a replay starts at chunk 1
    await ledger.record_sent(answer, [501])
    await ledger.record_sent(answer, [501, None])  # chunk 2 may or may not have arrived
    assert await ledger.delivered(answer) == [501, None]
    assert await ledger.delivered(other) == []
    assert await ledger.release_gone(lambda claimant: claimant == "boot-a") == 1  # boot-a died
    assert [p.update_id for p in await ledger.pending("boot-b")] == [1]  # still to be finished
    await ledger.finish(1, "answered", sent=(answer, [501, None, 503]))  # the last chunk, with the close
    assert await ledger.delivered(answer) == [501, None, 503]
    assert await ledger.status(1) == "answered" and await ledger.pending("boot-b") == []


async def test_a_claim_lapses_unless_renewed_and_another_worker_takes_it_over(store: Store) -> None:
    ledger = store.updates
    ledger.lease = timedelta(seconds=0.3)
    assert await ledger.arrive(1, "worker-a", chat_id=5, user_id=5, payload={"update_id": 1})
    assert await ledger.arrive(2, "worker-a", chat_id=6, user_id=6, payload={"update_id": 2})
    await asyncio.sleep(0.2)
    assert await ledger.renew("worker-a") == 2
    await asyncio.sleep(0.2)  # renewed: still held
    assert not await ledger.claim(1, "worker-b") and await ledger.pending("worker-b") == []
    await asyncio.sleep(0.2)  # worker-a stopped renewing: its claims lapse
    assert [p.update_id for p in await ledger.pending("worker-b")] == [1, 2]
    assert await ledger.claim(1, "worker-b")
    assert not await ledger.claim(1, "worker-c")  # one worker takes it over, not two
    assert await ledger.still_ours(1, "worker-b") and not await ledger.still_ours(1, "worker-a")


async def test_a_chats_younger_update_waits_for_the_older_ones_another_worker_holds(store: Store) -> None:
    ledger = store.updates
    assert await ledger.arrive(10, "worker-a", chat_id=5, user_id=5, payload={"update_id": 10})
    assert await ledger.record(11, chat_id=5, user_id=5, payload={"update_id": 11})  # unclaimed yet
    assert await ledger.arrive(12, "worker-b", chat_id=5, user_id=5, payload={"update_id": 12})
    assert await ledger.arrive(13, "worker-b", chat_id=7, user_id=7, payload={"update_id": 13})
    assert await ledger.turn_of(5, 10, "worker-a") and await ledger.turn_of(7, 13, "worker-b")
    assert not await ledger.turn_of(5, 11, "worker-b") and not await ledger.turn_of(5, 12, "worker-b")
    await ledger.finish(10, "answered")
    assert await ledger.turn_of(5, 11, "worker-b") and not await ledger.turn_of(5, 12, "worker-b")
    await ledger.forget(11)  # e.g. not addressed to the bot
    assert await ledger.turn_of(5, 12, "worker-b")
    assert await ledger.arrive(14, "worker-b", chat_id=5, user_id=5, payload={"update_id": 14})
    assert await ledger.turn_of(5, 14, "worker-b")  # its own older 12 is ordered by its queue
