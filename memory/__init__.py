"""Storage and recall: the only package that talks to the database."""

from memory.errors import NotFound, StoreError, StoreUnavailable
from memory.store import Store, open_store
from memory.types import (
    NewMessage,
    PendingUpdate,
    SessionRef,
    StoredMessage,
    UsageRecord,
    UsageTotals,
    UserRecord,
)

__all__ = [
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
