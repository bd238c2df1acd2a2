"""Recall's long reads run on the read connection's own thread: other chats keep moving.

The read thread is held still at a chosen statement (a SQLAlchemy event that waits on a
``threading.Event``), so what the loop can do meanwhile is shown without timing anything.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from memory import NewEpisode, Store
from memory.embedding_queue import EmbeddingQueue
from memory.hybrid import COSINE_FLOOR
from memory.vectors import pack

pytestmark = pytest.mark.anyio

ANA, BEN = "user:1", "user:2"


@contextmanager
def statements() -> Iterator[list[tuple[str, bool]]]:
    """Every statement any engine runs meanwhile: (SQL, whether on the event loop's thread)."""
    loop_thread = threading.get_ident()
    seen: list[tuple[str, bool]] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        seen.append((sql, threading.get_ident() == loop_thread))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


@contextmanager
def held_at(marker: str) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Hold the read thread just after it runs a statement containing ``marker`` (its cursor
    open, so SQLite's read is in progress): yields (reached, release)."""
    reached, release = threading.Event(), threading.Event()
    loop_thread = threading.get_ident()

    def hold(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if marker in sql and threading.get_ident() != loop_thread and not release.is_set():
            reached.set()
            release.wait(10)

    event.listen(Engine, "after_cursor_execute", hold)
    try:
        yield reached, release
    finally:
        release.set()
        event.remove(Engine, "after_cursor_execute", hold)


async def reached_in_thread(reached: threading.Event) -> None:
    assert await asyncio.to_thread(reached.wait, 10), "the read thread never got there"


@pytest.mark.sqlite_only
async def test_phase_one_reads_off_the_loop_and_the_recall_count_is_written_on_it(store: Store) -> None:
    await store.episodes.add_many(ANA, [NewEpisode("my dog Miso loves the beach", "user")])
    with statements() as seen:
        [hit] = await store.recall(ANA, "where does Miso like to go?")
    assert hit.episode.text == "my dog Miso loves the beach"
    matches = [on_loop for sql, on_loop in seen if "MATCH" in sql]
    updates = [on_loop for sql, on_loop in seen if sql.lstrip().upper().startswith("UPDATE")]
    assert matches and not any(matches)  # every full-text statement ran in the read thread
    assert updates == [True]  # the write stays on the one writing connection


@pytest.mark.sqlite_only
async def test_other_chats_keep_moving_while_a_recall_reads(store: Store) -> None:
    await store.episodes.add_many(ANA, [NewEpisode("my dog Miso loves the beach", "user")])
    with held_at("bm25(") as (reached, release):
        recall = asyncio.create_task(store.recall(ANA, "Miso beach"))
        await reached_in_thread(reached)
        # The recall is mid-read (SQLite's read open); another chat writes and reads meanwhile.
        await store.episodes.add(BEN, "figs are in season", speaker="user")
        page, total = await store.episodes.listing(BEN)
        assert total == 1 and page[0].text == "figs are in season"
        assert not recall.done()
        release.set()
        assert [h.episode.text for h in await recall] == ["my dog Miso loves the beach"]
    assert [h.episode.text for h in await store.recall(BEN, "figs")] == ["figs are in season"]


@pytest.mark.sqlite_only
async def test_forget_leaves_no_trace_while_recalls_read_beside_it(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    word = "Quixblorvat"
    await store.episodes.add_many(ANA, [NewEpisode(f"the code word is {word}", "user")])
    for i in range(200):
        await store.episodes.add(BEN, f"filler episode number {i} about nothing much", speaker="user")
    assert await store.recall(ANA, word)  # the read connection is open from here on
    with held_at("bm25(") as (reached, release):
        reading = asyncio.create_task(store.recall(BEN, "filler episode"))
        await reached_in_thread(reached)
        forgetting = asyncio.create_task(store.episodes.forget_all(ANA))
        await asyncio.sleep(0.05)  # its delete commits; its checkpoint waits for the read
        assert not forgetting.done()
        release.set()
        assert await forgetting == 1
        assert len(await reading) == 5
    assert "could not be truncated" not in caplog.text  # no reader of ours held the log
    data_dir = tmp_path / "data"
    for path in data_dir.iterdir():
        assert word.lower().encode() not in path.read_bytes().lower(), path.name
    assert await store.recall(ANA, word) == []


def unit(*parts: float) -> list[float]:
    return [*parts, *([0.0] * (4 - len(parts)))]


async def test_vector_neighbours_below_the_floor_are_not_recalled(store: Store) -> None:
    """The question points along the first axis; each episode at a chosen cosine to it."""
    near, far = COSINE_FLOOR + 0.05, COSINE_FLOOR - 0.05
    vectors = {
        "question": unit(1.0),
        "the harbour at dawn": unit(near, (1 - near**2) ** 0.5),
        "a red kayak": unit(far, (1 - far**2) ** 0.5),
        "tax forms": unit(0.0, 0.0, 1.0),
        "tax": unit(0.0, 0.0, 0.0, 1.0),
    }

    async def embed(texts: Sequence[str]) -> list[list[float]]:
        return [vectors[t] for t in texts]

    await store.episodes.add_many(ANA, [NewEpisode(t, "user") for t in list(vectors)[1:4]])
    store.vectors.attach(embed)
    await EmbeddingQueue(store, embed, "axes").drain()
    hits = await store.recall(ANA, "question")  # no word in common: vectors alone
    assert [h.episode.text for h in hits] == ["the harbour at dawn"]
    # An unrelated question recalls nothing at all.
    vectors["question"] = unit(0.0, 0.0, 0.0, 1.0)
    assert await store.recall(ANA, "question") == []
    # A word in common still counts, however far the vectors.
    assert (await store.recall(ANA, "tax"))[0].episode.text == "tax forms"


@pytest.mark.sqlite_only
async def test_vectors_stored_while_an_owner_is_loading_are_not_lost(store: Store) -> None:
    [first] = await store.episodes.add_many(ANA, [NewEpisode("first", "user")])
    blob = pack([1.0, 0.0])
    assert blob is not None
    await store.episodes.add_many(ANA, [NewEpisode("second", "user")])
    with held_at("embedding IS NOT NULL") as (reached, release):
        # Give the first episode its vector, then load while the second one's arrives.
        async with store.db.transaction() as conn:
            await conn.execute(
                text("UPDATE episodes SET embedding = :b WHERE id = :i"), {"b": blob, "i": first}
            )
        loading = asyncio.create_task(store.vectors.matrix(ANA, 2))
        await reached_in_thread(reached)
        store.vectors.add(ANA, [(first + 1, None, blob)])  # what the embedder does on storing
        release.set()
        matrix = await loading
    assert matrix.n == 2 and store.vectors.cached_owners() == [ANA]

    store.vectors.drop()
    with held_at("embedding IS NOT NULL") as (reached, release):
        loading = asyncio.create_task(store.vectors.matrix(ANA, 2))
        await reached_in_thread(reached)
        store.vectors.drop(ANA)  # forgotten meanwhile: what was read must not be cached
        release.set()
        await loading
    assert store.vectors.cached_owners() == []


@pytest.mark.sqlite_only
async def test_the_log_is_checkpointed_in_the_read_thread_not_on_the_loop(store: Store) -> None:
    """SQLite's own auto-checkpoint would copy the log in the committing connection, on the
    loop's thread; the store checkpoints every CHECKPOINT_EVERY writes in its read thread."""
    from memory.db import CHECKPOINT_EVERY

    assert store.db.sqlite_path is not None
    wal = store.db.sqlite_path.with_name(store.db.sqlite_path.name + "-wal")
    with statements() as seen:
        for i in range(CHECKPOINT_EVERY * 10):
            await store.episodes.add(ANA, f"note {i} " + "words " * 200, speaker="user")
            await asyncio.sleep(0)  # a bot awaits the network between messages; the checkpoint runs then
        await store.db.read(lambda conn: None)  # after the checkpoints queued before it
    checkpoints = [on_loop for sql, on_loop in seen if "wal_checkpoint" in sql]
    assert checkpoints and not any(checkpoints)
    # The log starts over after each checkpoint: it holds about CHECKPOINT_EVERY writes, not
    # all 640 (each write here appends ~35 pages: the episode, its index entries and merges).
    assert wal.stat().st_size < CHECKPOINT_EVERY * 40 * 4096 * 2
