"""Conversation locks across processes (PostgreSQL advisory locks), a no-op on SQLite."""

from __future__ import annotations

import asyncio

import pytest

from memory import open_store
from memory.locks import ConversationLocks, lock_key

pytestmark = pytest.mark.anyio


def test_keys_are_stable_signed_64_bit_and_distinct() -> None:
    keys = {lock_key(f"tg:{i}") for i in range(1000)}
    assert len(keys) == 1000 and all(-(2**63) <= k < 2**63 for k in keys)
    assert lock_key("tg:1") == lock_key("tg:1")


async def test_a_second_store_waits_for_the_lock_until_it_is_released(db_url: str) -> None:
    """Two stores on one database stand for two workers."""
    async with open_store(db_url) as one, open_store(db_url) as two:
        first, second = ConversationLocks(one.db), ConversationLocks(two.db)
        order: list[str] = []

        async def hold(locks: ConversationLocks, name: str, seconds: float) -> None:
            async with locks.hold("tg:5"):
                order.append(f"{name} in")
                await asyncio.sleep(seconds)
                order.append(f"{name} out")

        a = asyncio.create_task(hold(first, "a", 0.3))
        await asyncio.sleep(0.1)
        b = asyncio.create_task(hold(second, "b", 0.0))
        async with second.hold("tg:6"):  # another conversation is never held up
            order.append("other")
        await asyncio.gather(a, b)
        if first.shared:
            assert order == ["a in", "other", "a out", "b in", "b out"]
        else:  # SQLite: one process per database, whose chat queue orders a chat's work
            assert order.index("b in") < order.index("a out")


async def test_a_cancelled_holder_releases_the_lock(db_url: str) -> None:
    async with open_store(db_url) as one, open_store(db_url) as two:
        first, second = ConversationLocks(one.db), ConversationLocks(two.db)
        entered = asyncio.Event()

        async def stuck() -> None:
            async with first.hold("tg:7"):
                entered.set()
                await asyncio.sleep(60)

        task = asyncio.create_task(stuck())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(2):
            async with second.hold("tg:7"):
                pass
