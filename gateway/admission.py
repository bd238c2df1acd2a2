"""Who may run now: a bounded number of turns in flight, and one at a time per session.

Both live on the event loop's thread, so plain counters need no locks. A turn waiting for its
session still holds its slot: the slots bound every waiting request too, and nothing queues
without limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

from gateway.errors import Refusal

RETRY_AFTER_S = 1  # a slot frees up when any turn ends; a second is a fair first wait


class Admission:
    """At most ``limit`` requests inside :meth:`slot` at once; the next one is refused (503)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.busy = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.busy >= self.limit:
            raise Refusal(
                503,
                "busy",
                f"{self.limit} requests are being answered already; try again shortly",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1


@dataclass(slots=True)
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # the holder and the waiters


class SessionLocks:
    """One lock per session key, kept only while a request holds or awaits it."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:  # nobody holds or awaits it: forget it, or the dict only grows
                del self._entries[key]
