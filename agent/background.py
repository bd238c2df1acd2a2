"""Background jobs keyed by what they work on: at most one per key at a time, never raising.

Compaction (per session) and consolidation (per owner) run after an answer is sent, so nobody
waits for them; a job that fails is logged and changes nothing, since it has nobody to raise to.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine, Hashable
from typing import Any

from omni.errors import OmniError

log = logging.getLogger(__name__)


class BackgroundJobs:
    """Runs one job per key at a time; ``what`` names the jobs in log lines."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._running: dict[Hashable, asyncio.Task[object]] = {}

    def busy(self, key: Hashable) -> bool:
        return key in self._running

    def start(self, key: Hashable, job: Coroutine[Any, Any, object]) -> None:
        """Run ``job`` for ``key`` unless one is running for it already (then ``job`` is dropped)."""
        if key in self._running:
            job.close()
            return
        task = asyncio.create_task(job, name=f"{self._what}-{key}")
        self._running[key] = task
        task.add_done_callback(functools.partial(self._finished, key))

    def _finished(self, key: Hashable, task: asyncio.Task[object]) -> None:
        self._running.pop(key, None)
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        if isinstance(exc, OmniError):
            log.warning("%s of %s failed; nothing was changed: %r", self._what, key, exc)
        else:  # a background job has nobody to raise to: log it, change nothing
            log.error("%s of %s failed; nothing was changed", self._what, key, exc_info=exc)

    async def wait(self) -> None:
        """Until the jobs under way are done (they never raise)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel what is under way: a job cut short stores nothing."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
