"""The background embedder: gives episodes their vectors off the reply's path, losing none.

The queue is the database itself: an episode without an ``embedding`` is pending (a partial
index keeps them, fewest failed attempts first). A worker task takes up to ``batch`` of them,
calls the injected ``embed(texts)``, and stores each vector as a float32 blob
(:func:`memory.vectors.pack`), appending it to the owner's cached matrix. Episodes are written
by the reply's transaction as before; the worker only ever adds a vector to them, so a failing
embedding endpoint never costs an episode, and recall stays lexical for it meanwhile.

On a failure the batch's attempts go up (so they queue behind fresh episodes), the next batch
is half as big (one text a provider refuses cannot hold back the others for long), and the
worker backs off exponentially up to ``max_backoff``; a success restores both. Embeddings of
one model only are comparable: when ``OMNI_EMBEDDING_MODEL`` changes, every vector is cleared
and made again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, select, update

from memory.models import Episode
from memory.vectors import Embed, pack

if TYPE_CHECKING:
    from memory.store import Store

log = logging.getLogger(__name__)

BATCH = 32
IDLE_POLL = 1.0  # seconds between looks for new episodes once the queue is empty
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 300.0
CALL_TIMEOUT = 300.0  # one embed call, retries included
MAX_TEXT_CHARS = 8_000  # about 2,000 tokens: what common embedding models read at most
MODEL_KEY = "memory.embedding_model"  # store.kv: the model the stored vectors came from

_PENDING = (
    select(Episode.id, Episode.owner_key, Episode.session_id, Episode.text)
    .where(Episode.embedding.is_(None))
    .order_by(Episode.embed_attempts, Episode.id)
    .limit(bindparam("limit"))
)
_STORE = (
    update(Episode)
    .where(Episode.id == bindparam("eid"), Episode.embedding.is_(None))
    .values(embedding=bindparam("blob"))
)
_FAILED = (
    update(Episode)
    .where(Episode.id.in_(bindparam("ids", expanding=True)))
    .values(embed_attempts=Episode.embed_attempts + 1)
)
_CLEAR = update(Episode).where(Episode.embedding.is_not(None)).values(embedding=None, embed_attempts=0)


class EmbeddingQueue:
    """Embeds ``store``'s pending episodes in the background: ``async with EmbeddingQueue(...)``."""

    def __init__(
        self,
        store: Store,
        embed: Embed,
        model: str,
        *,
        batch: int = BATCH,
        idle: float = IDLE_POLL,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        self._store = store
        self._embed = embed
        self._model = model
        self._batch = self._size = batch
        self._idle = idle
        self._max_backoff = max_backoff
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Clear vectors of another model, then start the worker."""
        if await self._store.kv.get(MODEL_KEY) != self._model:
            async with self._store.db.transaction() as conn:
                cleared = (await conn.execute(_CLEAR)).rowcount
            self._store.vectors.drop()
            await self._store.kv.set(MODEL_KEY, self._model)
            if cleared:
                log.info(
                    "embedding model is now %s: %d episodes will be embedded again", self._model, cleared
                )
        self._task = asyncio.create_task(self._run(), name="embedding-queue")

    def wake(self) -> None:
        """Look for pending episodes now rather than at the next poll."""
        self._wake.set()

    async def run_once(self) -> int:
        """Embed one batch of pending episodes; how many got a vector. Raises what ``embed``
        raised, after counting the attempt."""
        db = self._store.db
        async with db.connection() as conn:
            rows = (await conn.execute(_PENDING, {"limit": self._size})).all()
        if not rows:
            return 0
        ids = [row.id for row in rows]
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                vectors = await self._embed([row.text[:MAX_TEXT_CHARS] for row in rows])
            if len(vectors) != len(rows):
                raise ValueError(f"{len(vectors)} vectors for {len(rows)} texts")
        except Exception:
            async with db.transaction() as conn:
                await conn.execute(_FAILED, {"ids": ids})
            raise
        added: dict[str, list[tuple[int, int | None, bytes]]] = defaultdict(list)
        async with db.transaction() as conn:
            for row, vector in zip(rows, vectors, strict=True):
                blob = pack(vector)
                if blob is None:  # a zero vector has no direction to compare: try it again later
                    await conn.execute(_FAILED, {"ids": [row.id]})
                    continue
                # A row forgotten meanwhile updates nothing, and so never reaches the cache.
                if (await conn.execute(_STORE, {"eid": row.id, "blob": blob})).rowcount and row.owner_key:
                    added[row.owner_key].append((row.id, row.session_id, blob))
            # Inside the transaction: no forget can run between the write and the cache append.
            for owner, items in added.items():
                self._store.vectors.add(owner, items)
        return sum(len(items) for items in added.values())

    async def drain(self) -> int:
        """Embed until nothing is pending (the bench; tests); how many got a vector."""
        total = 0
        while done := await self.run_once():
            total += done
        return total

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            try:
                done = await self.run_once()
            except Exception as exc:  # supervisor: log, back off, retry; the episodes wait
                backoff = min(max(2 * backoff, FIRST_BACKOFF), self._max_backoff)
                self._size = max(1, self._size // 2)
                log.warning("embedding failed (%s); retrying in %.0fs", type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                continue
            backoff, self._size = 0.0, self._batch
            if not done:
                self._wake.clear()
                try:
                    async with asyncio.timeout(self._idle):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])  # unlike awaiting it, never mistakes its cancellation for ours
            self._task = None

    async def __aenter__(self) -> EmbeddingQueue:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
