"""Storage failures.

OmniError
└── StoreError             anything the store cannot do
    ├── StoreUnavailable   the database cannot be opened or migrated (URL, driver, server)
    ├── StoreLocked        another process held SQLite's write lock past the busy timeout
    ├── StoreFull          the disk holding the database is full: nothing new can be saved
    ├── SchemaMismatch     the schema is not one this code can use: newer, or tables missing
    ├── NotFound           a row that should exist does not
    └── JobLimitReached    a user already has as many scheduled jobs as allowed
"""

from __future__ import annotations

import sqlite3

from omni.errors import OmniError


class StoreError(OmniError):
    user_message = "I can't reach my memory right now. Please try again in a moment."


class StoreUnavailable(StoreError):
    pass


class StoreLocked(StoreError):
    pass


class StoreFull(StoreError):
    user_message = (
        "My storage is full, so I couldn't save your message. Please send it again later; "
        "an admin needs to free some disk space."
    )


class SchemaMismatch(StoreError):
    pass


class NotFound(StoreError):
    user_message = "I couldn't find that."


def is_lock_timeout(exc: BaseException) -> bool:
    """Whether ``exc``, or a driver error behind it, is SQLite giving up on another's lock."""
    return any(
        getattr(err, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        or "database is locked" in str(err)
        for err in _sqlite_errors(exc)
    )


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or a driver error behind it, is SQLite finding no room on its disk."""
    return any(
        getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        or "database or disk is full" in str(err)
        for err in _sqlite_errors(exc)
    )


def _sqlite_errors(exc: BaseException) -> list[sqlite3.OperationalError]:
    """The SQLite driver's errors in ``exc``'s chain."""
    # SQLAlchemy keeps the driver's error in ``orig``; async adapters chain it as the cause.
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    found: list[sqlite3.OperationalError] = []
    while pending:
        err = pending.pop()
        if id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, sqlite3.OperationalError):
            found.append(err)
        linked = (getattr(err, "orig", None), err.__cause__, err.__context__)
        pending += [e for e in linked if isinstance(e, BaseException)]
    return found


class JobLimitReached(StoreError):
    """A user has ``limit`` active or paused scheduled jobs: no more until one is cancelled."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"at most {limit} scheduled jobs per user",
            user_message=f"You already have {limit} scheduled jobs; cancel one first.",
        )
        self.limit = limit
