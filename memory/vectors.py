"""Episode vectors: stored as float32 blobs, searched by brute force over a per-owner matrix.

A vector is kept at unit length, so cosine similarity is a dot product. Each owner's vectors are
read from the database the first time that owner is searched and kept as one matrix, appended
to as the embedder (:mod:`memory.embedding_queue`) stores new ones, and dropped when the owner
forgets something; the least recently searched owners are evicted past ``MAX_CACHE_BYTES``.
Brute force over 10,000 x 384 floats is about a millisecond with numpy (bench/recall.py).

numpy is imported only by what runs with embeddings on (:meth:`Vectors.attach` was called), so
the bot's footprint without ``OMNI_EMBEDDING_MODEL`` does not grow; packing uses the stdlib.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
import time
from array import array
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Sequence
from types import ModuleType
from typing import TYPE_CHECKING

from sqlalchemy import Connection, bindparam, select

from memory.db import Database
from memory.models import Episode

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

Embed = Callable[[Sequence[str]], Awaitable[list[list[float]]]]

MAX_CACHE_BYTES = 256 * 1024 * 1024
QUERY_TIMEOUT = 3.0  # seconds a question may wait for its embedding before recall goes lexical
QUERY_PAUSE = 30.0  # seconds recall stays lexical after a question's embedding failed

_OWNER_VECTORS = select(Episode.id, Episode.session_id, Episode.embedding).where(
    Episode.owner_key == bindparam("owner"), Episode.embedding.is_not(None)
)


def _numpy() -> ModuleType:
    # One BLAS thread: a 10,000 x 384 product takes 0.2 ms on one, but a pool of threads that
    # must be woken on a busy two-core machine measured p95 12 ms, all of it on the event loop.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import numpy

    return numpy


def pack(vector: Sequence[float]) -> bytes | None:
    """``vector`` scaled to unit length as little-endian float32; None if it has no direction."""
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if not norm or not math.isfinite(norm):
        return None
    packed = array("f", (x / norm for x in vector))
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def unpack(blob: bytes) -> list[float]:
    """The floats of a packed vector."""
    values = array("f", blob)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


class _Matrix:
    """One owner's vectors, rows appended in place (capacity doubles, as a list's does)."""

    def __init__(self, dim: int) -> None:
        xp = _numpy()  # not `np`: the annotations name the TYPE_CHECKING import
        self.dim = dim
        self.n = 0
        self.vectors: NDArray[np.float32] = xp.empty((64, dim), dtype=xp.float32)
        self.ids: NDArray[np.int64] = xp.empty(64, dtype=xp.int64)
        self.sessions: NDArray[np.int64] = xp.empty(64, dtype=xp.int64)  # -1: no session
        self.row_of: dict[int, int] = {}

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes + self.ids.nbytes + self.sessions.nbytes)

    def append(self, rows: Sequence[tuple[int, int | None, bytes]]) -> None:
        np = _numpy()
        fresh = [r for r in rows if r[0] not in self.row_of and len(r[2]) == 4 * self.dim]
        if not fresh:
            return
        need = self.n + len(fresh)
        if need > len(self.ids):
            size = max(need, 2 * len(self.ids))
            self.vectors = np.resize(self.vectors, (size, self.dim))
            self.ids = np.resize(self.ids, size)
            self.sessions = np.resize(self.sessions, size)
        blob = b"".join(r[2] for r in fresh)
        self.vectors[self.n : need] = np.frombuffer(blob, dtype="<f4").reshape(len(fresh), self.dim)
        self.ids[self.n : need] = [r[0] for r in fresh]
        self.sessions[self.n : need] = [-1 if r[1] is None else r[1] for r in fresh]
        for i, (eid, _, _) in enumerate(fresh):
            self.row_of[eid] = self.n + i
        self.n = need

    def top(
        self, query: NDArray[np.float32], limit: int, session_id: int | None, exclude_ids: Collection[int]
    ) -> list[tuple[int, float]]:
        """The ``limit`` most similar episodes, best first, outside ``session_id``."""
        np = _numpy()
        if self.n == 0 or limit <= 0:
            return []
        sims = self.vectors[: self.n] @ query
        if session_id is not None:
            sims[self.sessions[: self.n] == session_id] = -np.inf
        for eid in exclude_ids:
            row = self.row_of.get(eid)
            if row is not None:
                sims[row] = -np.inf
        take = min(limit, self.n)
        rows = np.argpartition(-sims, take - 1)[:take]
        rows = rows[np.argsort(-sims[rows], kind="stable")]
        return [(int(self.ids[r]), float(sims[r])) for r in rows if np.isfinite(sims[r])]

    def similarity(self, query: NDArray[np.float32], ids: Collection[int]) -> dict[int, float]:
        """Cosine similarity of the given episodes that have a vector."""
        rows = {eid: self.row_of[eid] for eid in ids if eid in self.row_of}
        if not rows:
            return {}
        sims = self.vectors[list(rows.values())] @ query
        return {eid: float(s) for eid, s in zip(rows, sims, strict=True)}


def _load(conn: Connection, owner: str, dim: int) -> _Matrix:
    # Runs in the read thread (Database.read), numpy's work too.
    matrix = _Matrix(dim)
    rows = conn.execute(_OWNER_VECTORS, {"owner": owner})
    matrix.append([(eid, session, blob) for eid, session, blob in rows if blob is not None])
    return matrix


class Vectors:
    """Vector search over the store's episodes; reachable as ``store.vectors``.

    Off until :meth:`attach` gives it an embedding function (``agent/factory.py`` does when
    ``OMNI_EMBEDDING_MODEL`` is set); while off, :meth:`search` finds nothing and costs nothing.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._embed: Embed | None = None
        self._owners: OrderedDict[str, _Matrix] = OrderedDict()
        self._loading: dict[str, list[tuple[int, int | None, bytes]]] = {}  # vectors added meanwhile
        self._paused_until = 0.0
        self.query_timeout = QUERY_TIMEOUT

    @property
    def enabled(self) -> bool:
        return self._embed is not None

    def attach(self, embed: Embed) -> None:
        """Turn vector search on: questions are embedded with ``embed``."""
        self._embed = embed

    def detach(self) -> None:
        self._embed = None
        self.drop()

    def cached_owners(self) -> list[str]:
        """Owners whose vectors are held in memory (for tests and /status)."""
        return list(self._owners)

    def drop(self, owner: str | None = None) -> None:
        """Forget the cached vectors of ``owner`` (every owner if None); re-read on next search."""
        if owner is None:
            self._owners.clear()
            self._loading.clear()
        else:
            self._owners.pop(owner, None)
            self._loading.pop(owner, None)

    def add(self, owner: str, rows: Sequence[tuple[int, int | None, bytes]]) -> None:
        """New vectors stored for ``owner`` (id, session id, blob): appended if it is cached."""
        matrix = self._owners.get(owner)
        if matrix is not None:
            matrix.append(rows)
        loading = self._loading.get(owner)
        if loading is not None:
            loading.extend(rows)

    async def embed_query(self, text: str) -> NDArray[np.float32] | None:
        """The question's unit vector; None when off, failing, or slower than ``query_timeout``
        (recall then goes lexical: a question never waits long for a vector)."""
        if self._embed is None or time.monotonic() < self._paused_until:
            return None
        np = _numpy()
        try:
            async with asyncio.timeout(self.query_timeout):
                (vector,) = await self._embed([text])
        except Exception as exc:  # a timeout or any provider error: lexical recall still answers
            self._pause(exc)
            return None
        blob = pack(vector)
        return None if blob is None else np.frombuffer(blob, dtype="<f4")

    def _pause(self, exc: BaseException) -> None:
        # The endpoint is likely down: later questions skip it for a while instead of each
        # waiting out the timeout (the embedder keeps retrying in the background meanwhile).
        log.warning(
            "question embedding failed (%s); recall is lexical for %gs", type(exc).__name__, QUERY_PAUSE
        )
        self._paused_until = time.monotonic() + QUERY_PAUSE

    async def matrix(self, owner: str, dim: int) -> _Matrix:
        """``owner``'s vectors of ``dim`` dimensions, read once and then kept.

        The first read (10,000 vectors: 15-30 ms) runs in the database's read thread, so other
        chats keep moving; vectors stored meanwhile (:meth:`add`) are appended once it is back,
        and a :meth:`drop` meanwhile leaves what was read uncached."""
        matrix = self._owners.get(owner)
        if matrix is not None and matrix.dim == dim:
            self._owners.move_to_end(owner)
            return matrix
        pending: list[tuple[int, int | None, bytes]] = []
        self._loading[owner] = pending
        try:
            matrix = await self._db.read(lambda conn: _load(conn, owner, dim))
        finally:
            current = self._loading.get(owner) is pending
            if current:
                del self._loading[owner]
        matrix.append(pending)
        if current:
            self._owners[owner] = matrix
            self._evict()
        return matrix

    def _evict(self) -> None:
        total = sum(m.nbytes for m in self._owners.values())
        while total > MAX_CACHE_BYTES and len(self._owners) > 1:
            _, oldest = self._owners.popitem(last=False)
            total -= oldest.nbytes
