"""What webhook mode keeps in the store: ledger rows recorded before the gate, and its secret."""

from __future__ import annotations

import asyncio

import pytest

from memory import Store

pytestmark = pytest.mark.anyio


async def test_an_update_recorded_on_arrival_is_claimed_once_by_the_gate(store: Store) -> None:
    ledger = store.updates
    assert await ledger.record(1, chat_id=5, user_id=5, payload={"update_id": 1})
    assert not await ledger.record(1, chat_id=5, user_id=5, payload={"update_id": 1})  # delivered again
    assert await ledger.status(1) == "received"
    assert await ledger.arrive(1, "boot-a", chat_id=5, user_id=5, payload={"update_id": 1})  # the gate
    assert not await ledger.arrive(1, "boot-a", chat_id=5, user_id=5, payload={"update_id": 1})
    assert await ledger.status(1) == "processing"
    assert await ledger.pending("boot-b") == []  # boot-a holds it (its lease runs)
    await ledger.release_gone(lambda claimant: claimant == "boot-a")
    assert [p.update_id for p in await ledger.pending("boot-b")] == [1]  # boot-a died: replayed
    await ledger.finish(1, "answered")
    assert await ledger.pending("boot-b") == []


async def test_forget_drops_an_open_update_and_nothing_else(store: Store) -> None:
    ledger = store.updates
    await ledger.record(2, chat_id=6, user_id=6, payload={"update_id": 2, "message": {"text": "hi"}})
    await ledger.forget(2)
    assert await ledger.status(2) is None and await ledger.pending("boot-b") == []
    await ledger.arrive(3, "boot-a", chat_id=5, user_id=5, payload={"update_id": 3})
    await ledger.finish(3, "answered")
    await ledger.forget(3)  # answered: its row stays, so a late duplicate is still recognised
    assert await ledger.status(3) == "answered"
    await ledger.forget(99)  # never recorded (polling mode): nothing happens


async def test_setdefault_keeps_the_first_value_stored(store: Store) -> None:
    assert await store.kv.setdefault("secret", "first") == "first"
    assert await store.kv.setdefault("secret", "second") == "first"
    assert await store.kv.get("secret") == "first"
    both = await asyncio.gather(store.kv.setdefault("other", "a"), store.kv.setdefault("other", "b"))
    assert both[0] == both[1] == await store.kv.get("other")
