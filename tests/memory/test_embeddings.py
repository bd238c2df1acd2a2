"""Episode embeddings: float32 blobs made in the background, hybrid recall, forgetting.

The embedding function is injected, so these tests use small deterministic ones: the fake
LLM's hashed bag of words, and a "concept" embedding in which synonyms share a direction (what
a real model gives and BM25 cannot).
"""

from __future__ import annotations

import asyncio
import inspect
import math
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from memory.embedding_queue import MODEL_KEY, EmbeddingQueue
from memory.hybrid import fuse
from memory.store import Store
from memory.types import NewEpisode
from memory.vectors import pack, unpack
from tests.fakes.llm_api import fake_embedding

pytestmark = pytest.mark.anyio

OWNER = "user:7"
CONCEPTS = {"dog": 0, "puppy": 0, "hound": 0, "boat": 1, "kayak": 1, "canoe": 1, "sister": 2, "porto": 3}


async def hashed(texts: Sequence[str]) -> list[list[float]]:
    return [fake_embedding(t) for t in texts]


async def concepts(texts: Sequence[str]) -> list[list[float]]:
    """Synonyms point the same way; any other word adds a little noise of its own."""
    out = []
    for text in texts:
        vector = [0.0] * 8
        for word in text.lower().replace("?", " ").replace(".", " ").split():
            if word in CONCEPTS:
                vector[CONCEPTS[word]] += 1.0
            else:
                vector[4 + len(word) % 4] += 0.1
        out.append(vector)
    return out


class Flaky:
    """An embedding endpoint that fails ``failures`` times, then works."""

    def __init__(self, failures: int, embed=hashed) -> None:  # type: ignore[no-untyped-def]
        self.failures = failures
        self.calls = 0
        self._embed = embed

    async def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("embedding endpoint down")
        result: list[list[float]] = await self._embed(texts)
        return result


async def until(condition: Callable[[], bool | Awaitable[bool]], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await _holds(condition):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)


async def _holds(condition: Callable[[], bool | Awaitable[bool]]) -> bool:
    value = condition()
    return await value if inspect.isawaitable(value) else bool(value)


async def _all(flags: Awaitable[list[bool]]) -> bool:
    return all(await flags)


async def _count(flags: Awaitable[list[bool]], wanted: int) -> bool:
    return sum(await flags) == wanted


async def _sized(stored: Awaitable[dict[str, tuple[bytes | None, int]]], size: int) -> bool:
    return all(blob is not None and len(blob) == size for blob, _ in (await stored).values())


async def embedded(store: Store) -> list[bool]:
    """Whether each episode has its vector."""
    return [blob is not None for blob, _ in (await embeddings(store)).values()]


async def embeddings(store: Store) -> dict[str, tuple[bytes | None, int]]:
    async with store.db.connection() as conn:
        rows = (await conn.execute(sa.text("SELECT text, embedding, embed_attempts FROM episodes"))).all()
    return {body: (None if blob is None else bytes(blob), attempts) for body, blob, attempts in rows}


async def add(store: Store, *texts: str, session_id: int | None = None) -> list[int]:
    return await store.episodes.add_many(OWNER, [NewEpisode(t, session_id=session_id) for t in texts])


def test_a_vector_is_packed_as_unit_length_float32() -> None:
    blob = pack([3.0, 4.0])
    assert blob is not None and len(blob) == 8
    assert unpack(blob) == pytest.approx([0.6, 0.8])
    assert pack([0.0, 0.0]) is None and pack([math.nan, 1.0]) is None


async def test_the_queue_embeds_every_pending_episode_as_a_blob(store: Store) -> None:
    await add(store, *(f"episode number {i} about kayaks" for i in range(70)))
    queue = EmbeddingQueue(store, hashed, "fake", batch=32)
    assert await queue.drain() == 70
    stored = await embeddings(store)
    assert all(blob is not None and len(blob) == 4 * 64 for blob, _ in stored.values())
    assert unpack(stored["episode number 3 about kayaks"][0] or b"") == pytest.approx(
        fake_embedding("episode number 3 about kayaks"), abs=1e-6
    )
    assert await queue.drain() == 0


async def test_a_failing_endpoint_keeps_episodes_and_recall_lexical_until_it_recovers(store: Store) -> None:
    flaky = Flaky(failures=3)
    store.vectors.attach(flaky)
    await add(store, "I adopted a puppy called Miso")
    await add(store, "my sister moved to Porto")  # apart: not each other's indexed context
    async with EmbeddingQueue(store, flaky, "fake", idle=0.01, max_backoff=0.05) as queue:
        await until(lambda: flaky.calls >= 1)  # the worker's first try failed
        assert all(blob is None for blob, _ in (await embeddings(store)).values())
        # Meanwhile recall is lexical (the question's embedding fails too, and pauses vectors).
        recalled = await store.recall(OWNER, "what is the puppy called?")
        assert [r.episode.text for r in recalled] == ["I adopted a puppy called Miso"]
        queue.wake()
        await until(lambda: _all(embedded(store)))
    stored = await embeddings(store)
    assert len(stored) == 2 and all(blob is not None for blob, _ in stored.values())
    assert all(attempts >= 1 for _, attempts in stored.values())  # the failures were counted


async def test_a_failed_batch_is_halved_so_one_bad_text_cannot_hold_back_the_rest(store: Store) -> None:
    async def refuses_poison(texts: Sequence[str]) -> list[list[float]]:
        if any("poison" in t for t in texts):
            raise ValueError("the provider refused one input")
        return await hashed(texts)

    await add(store, "poison text", *(f"good text {i}" for i in range(7)))
    async with EmbeddingQueue(store, refuses_poison, "fake", batch=8, idle=0.01, max_backoff=0.01):
        await until(lambda: _count(embedded(store), 7))
    stored = await embeddings(store)
    assert stored["poison text"][0] is None and stored["poison text"][1] >= 2  # kept, not lost
    assert all(blob is not None for text, (blob, _) in stored.items() if text != "poison text")


async def test_hybrid_recall_finds_a_paraphrase_that_bm25_cannot(store: Store) -> None:
    await add(store, "I adopted a puppy called Miso", "I bought a red kayak", "my sister moved to Porto")
    assert await store.recall(OWNER, "name of my dog?") == []  # no shared word
    store.vectors.attach(concepts)
    await EmbeddingQueue(store, concepts, "concepts").drain()
    recalled = await store.recall(OWNER, "name of my dog?")
    assert recalled[0].episode.text == "I adopted a puppy called Miso"
    assert 0.0 <= recalled[-1].relevance <= recalled[0].relevance == 1.0
    # Both signals agree: the lexical match stays first.
    assert (await store.recall(OWNER, "the canoe I bought"))[0].episode.text == "I bought a red kayak"


async def test_vector_recall_leaves_out_the_current_session_and_excluded_ids(store: Store) -> None:
    ref = await store.conversations.current("local:x")
    old = await add(store, "I adopted a puppy called Miso")
    await add(store, "the puppy is asleep", session_id=ref.session_id)
    store.vectors.attach(concepts)
    await EmbeddingQueue(store, concepts, "concepts").drain()
    recalled = await store.recall(OWNER, "my dog", exclude_session_id=ref.session_id)
    assert [r.episode.text for r in recalled] == ["I adopted a puppy called Miso"]
    assert await store.recall(OWNER, "my dog", exclude_session_id=ref.session_id, exclude_ids=old) == []


async def test_new_vectors_join_the_cached_matrix_and_forget_drops_it(store: Store) -> None:
    store.vectors.attach(concepts)
    queue = EmbeddingQueue(store, concepts, "concepts")
    (puppy,) = await add(store, "I adopted a puppy called Miso")
    await queue.drain()
    assert (await store.recall(OWNER, "my dog"))[0].episode.id == puppy
    assert store.vectors.cached_owners() == [OWNER]

    (hound,) = await add(store, "a hound barked all night")
    await queue.drain()  # appended to the cached matrix, not re-read
    assert store.vectors.cached_owners() == [OWNER]
    assert {r.episode.id for r in await store.recall(OWNER, "my dog")} == {puppy, hound}

    assert await store.episodes.forget(OWNER, hound) == 1
    assert store.vectors.cached_owners() == []  # the forgotten vector left memory too
    assert [r.episode.id for r in await store.recall(OWNER, "my dog")] == [puppy]
    await store.episodes.forget_all(OWNER)
    assert store.vectors.cached_owners() == []
    assert await store.recall(OWNER, "my dog") == []
    assert all(blob is None for blob, _ in (await embeddings(store)).values())


async def test_an_episode_forgotten_while_being_embedded_never_reaches_the_cache(store: Store) -> None:
    store.vectors.attach(concepts)
    (first,) = await add(store, "a puppy")
    await EmbeddingQueue(store, concepts, "concepts").drain()
    await store.recall(OWNER, "dog")  # cache the owner
    (second,) = await add(store, "a hound")

    async def forget_first_then_embed(texts: Sequence[str]) -> list[list[float]]:
        await store.episodes.forget(OWNER, second)
        return await concepts(texts)

    await EmbeddingQueue(store, forget_first_then_embed, "concepts").drain()
    assert [r.episode.id for r in await store.recall(OWNER, "dog")] == [first]


async def test_changing_the_embedding_model_embeds_everything_again(store: Store) -> None:
    await add(store, "a puppy", "a kayak")
    async with EmbeddingQueue(store, hashed, "model-a") as queue:  # stamps the model
        await queue.drain()
    assert all(blob is not None and len(blob) == 4 * 64 for blob, _ in (await embeddings(store)).values())
    async with EmbeddingQueue(store, concepts, "model-b", idle=0.01):
        assert await store.kv.get(MODEL_KEY) == "model-b"
        await until(lambda: _sized(embeddings(store), 4 * 8))
    assert all(blob is not None and len(blob) == 4 * 8 for blob, _ in (await embeddings(store)).values())


@pytest.mark.parametrize("fusion", ["convex", "minmax", "rrf"])
def test_fused_relevance_is_in_zero_one_and_rewards_agreement(fusion: str) -> None:
    bm25 = {1: 9.0, 2: 3.0, 3: 1.0}
    cosine = {1: 0.9, 2: 0.2, 4: 0.8, 3: -0.3}
    fused = fuse(bm25, cosine, fusion)  # type: ignore[arg-type]
    assert set(fused) == {1, 2, 3, 4}
    assert all(0.0 <= v <= 1.0 for v in fused.values())
    assert max(fused, key=fused.__getitem__) == 1 and fused[1] == pytest.approx(1.0)


def test_without_embeddings_numpy_is_never_imported(tmp_path: Path) -> None:
    code = """
import asyncio, sys
from memory.migrate import upgrade
from memory.store import open_store
from memory.types import NewEpisode
import agent.factory

url = "sqlite+aiosqlite:///" + sys.argv[1]
upgrade(url)

async def main():
    async with open_store(url) as store:
        await store.episodes.add_many("user:1", [NewEpisode("I adopted a puppy called Miso")])
        assert await store.recall("user:1", "what is the puppy called?")
        await store.episodes.forget_all("user:1")

asyncio.run(main())
print(sorted(m for m in sys.modules if m.split(".")[0] == "numpy"))
"""
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "omni.db")], capture_output=True, text=True, cwd=root
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
