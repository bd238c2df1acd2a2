"""Storage and recall: the only package that talks to the database.

Names are imported on first use (PEP 562) so that ``memory.migrate``'s fast path, which runs
at every start, does not pay for SQLAlchemy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memory.episodes import Episodes, owner_for
    from memory.errors import NotFound, StoreError, StoreUnavailable
    from memory.recall import Recalled, two_phase_recall
    from memory.store import Store, open_store
    from memory.types import (
        EpisodeView,
        Exchange,
        NewEpisode,
        NewMessage,
        PendingUpdate,
        SessionRef,
        StoredMessage,
        UsageRecord,
        UsageTotals,
        UserRecord,
    )

_WHERE = {
    "Episodes": "memory.episodes",
    "owner_for": "memory.episodes",
    "Recalled": "memory.recall",
    "two_phase_recall": "memory.recall",
    "EpisodeView": "memory.types",
    "Exchange": "memory.types",
    "NewEpisode": "memory.types",
    "NotFound": "memory.errors",
    "StoreError": "memory.errors",
    "StoreUnavailable": "memory.errors",
    "Store": "memory.store",
    "open_store": "memory.store",
    "NewMessage": "memory.types",
    "PendingUpdate": "memory.types",
    "SessionRef": "memory.types",
    "StoredMessage": "memory.types",
    "UsageRecord": "memory.types",
    "UsageTotals": "memory.types",
    "UserRecord": "memory.types",
}
__all__ = [
    "EpisodeView",
    "Episodes",
    "Exchange",
    "NewEpisode",
    "Recalled",
    "owner_for",
    "two_phase_recall",
    "NewMessage",
    "NotFound",
    "PendingUpdate",
    "SessionRef",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredMessage",
    "UsageRecord",
    "UsageTotals",
    "UserRecord",
    "open_store",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'memory' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
