"""The ledger records an answer's delivery chunk by chunk, so a replay knows where to resume."""

from __future__ import annotations

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
    assert [p.update_id for p in await ledger.pending("boot-b")] == [1]  # still to be finished
    await ledger.finish(1, "answered", sent=(answer, [501, None, 503]))  # the last chunk, with the close
    assert await ledger.delivered(answer) == [501, None, 503]
    assert await ledger.status(1) == "answered" and await ledger.pending("boot-b") == []
