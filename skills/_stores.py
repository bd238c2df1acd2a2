"""The memory store and the knowledge index, opened on first use and closed with the server.

``omni mcp`` starts without touching the database or importing SQLAlchemy (bench/mcp_latency.py
measures start-up), so the first memory or knowledge call opens what it needs. The memory
store is never migrated here: the bot or ``omni db upgrade`` does that; a database not at the
schema this code expects answers a one-line error saying what to run.

Each server lifespan enters :class:`Stores` (stdio and Streamable HTTP once, SSE once per
connection); the last one out closes both.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import anyio

from omni.errors import OmniError
from skills._tool import SkillError

if TYPE_CHECKING:
    from memory.knowledge import KnowledgeIndex
    from memory.store import Store

log = logging.getLogger(__name__)


class Stores:
    """Lazily opened memory store (``database_url``) and knowledge index (``knowledge_path``)."""

    def __init__(self, database_url: str, knowledge_path: Path) -> None:
        self.database_url = database_url
        self.knowledge_path = knowledge_path
        self._store: Store | None = None
        self._index: KnowledgeIndex | None = None
        self._opening = anyio.Lock()
        self._users = 0

    @property
    def opened(self) -> tuple[bool, bool]:
        """Whether the memory store and the knowledge index are open now."""
        return self._store is not None, self._index is not None

    async def memory(self) -> Store:
        """The memory store, opened now if it is not yet; SkillError if the schema is not ready."""
        async with self._opening:
            if self._store is None:
                await anyio.to_thread.run_sync(self._check_schema)
                from memory.store import open_store

                self._store = open_store(self.database_url)
            return self._store

    async def knowledge(self) -> KnowledgeIndex:
        """The knowledge index, opened (and created) now if it is not yet."""
        async with self._opening:
            if self._index is None:
                from memory.knowledge import KnowledgeIndex

                self._index = await anyio.to_thread.run_sync(KnowledgeIndex, self.knowledge_path)
            return self._index

    def _check_schema(self) -> None:
        """The database must be migrated to exactly this code's head revision (blocking)."""
        from memory.migrate import HEAD_REVISION, check_schema, read_state
        from omni.settings import require_driver

        try:
            require_driver(self.database_url)
            state = read_state(self.database_url)
            check_schema(self.database_url, state)
        except OmniError as exc:  # the detail names files and URLs: the log gets it, not the model
            log.warning("memory unavailable: %s", exc)
            raise SkillError(
                "memory is unavailable: the database cannot be used by this omni (newer, damaged "
                "or unreachable); the operator should run `omni db upgrade` (details in the server log)"
            ) from None
        if state.revision != HEAD_REVISION:
            raise SkillError(
                f"memory is unavailable: the database is at revision {state.revision or 'none'} and "
                f"this omni needs {HEAD_REVISION}; the operator should run `omni db upgrade` "
                "(or start `omni bot`, which upgrades it)"
            )

    async def aclose(self) -> None:
        async with self._opening:
            store, index, self._store, self._index = self._store, self._index, None, None
        if store is not None:
            await store.aclose()
        if index is not None:
            await anyio.to_thread.run_sync(index.close)

    async def __aenter__(self) -> Stores:
        self._users += 1
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._users -= 1
        if self._users == 0:
            await self.aclose()


@contextmanager
def store_errors() -> Iterator[None]:
    """A store failure (locked by another process, gone) as one line the model can act on."""
    try:
        yield
    except OmniError as exc:
        log.warning("memory call failed: %s", exc)
        raise SkillError(f"memory failed: {exc.user_message}") from None
