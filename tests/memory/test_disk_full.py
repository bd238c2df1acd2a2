"""A full disk: SQLite's "database or disk is full" becomes StoreFull (words a user may see), the
failed write leaves nothing behind, and writes work again once there is room.

SQLite's ``max_page_count`` stands in for the disk here (it fails the same way, SQLITE_FULL);
bench/faults.py (disk_full) fills a real small file system under a running bot.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from memory import NewMessage, Store
from memory.errors import StoreFull

pytestmark = [pytest.mark.anyio, pytest.mark.sqlite_only]

BIG = "x" * 4000  # a page's worth: the database must grow to take a few


async def test_a_full_disk_is_a_store_full_error_and_writes_resume_when_there_is_room(store: Store) -> None:
    ref = await store.conversations.current("tg:1", telegram_chat_id=1)
    await store.conversations.append(ref.session_id, NewMessage("user", "before", tokens=1))
    async with store.db.connection() as conn:
        pages = await conn.scalar(text("PRAGMA page_count"))
        await conn.scalar(text(f"PRAGMA max_page_count = {pages}"))  # no room to grow
    with pytest.raises(StoreFull) as caught:
        for _ in range(50):
            await store.conversations.append(ref.session_id, NewMessage("user", BIG, tokens=1))
    assert "is full" in str(caught.value) and "storage is full" in caught.value.user_message
    async with store.db.connection() as conn:
        await conn.scalar(text("PRAGMA max_page_count = 1073741823"))
    await store.conversations.append(ref.session_id, NewMessage("user", "after", tokens=1))
    contents = [m.content for m in await store.conversations.messages(ref.session_id)]
    assert contents[0] == "before" and contents[-1] == "after"
    assert all(c in ("before", "after", BIG) for c in contents)  # the failed write left no part
    async with store.db.connection() as conn:
        assert await conn.scalar(text("PRAGMA integrity_check")) == "ok"
