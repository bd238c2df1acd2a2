"""Apply Alembic migrations programmatically.

Alembic is synchronous and our ``env.py`` runs its own event loop, so these functions must be
called outside a running loop (async callers use ``asyncio.to_thread``).
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path

from memory._url import sqlite_path
from memory.errors import StoreUnavailable

log = logging.getLogger(__name__)

# The newest revision in migrations/versions; a test keeps the two in step. It lets start-up
# skip importing Alembic when the database is already current.
HEAD_REVISION = "0001_initial"

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = url
    return config


def current_revision_fast(url: str) -> str | None:
    """The revision stamped in an SQLite file, read with the stdlib (None if unknown)."""
    path = sqlite_path(url)
    if path is None or not path.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def upgrade(url: str) -> str:
    """Bring the database at ``url`` to the newest revision; returns that revision."""
    from alembic import command

    try:
        command.upgrade(alembic_config(url), "head")  # type: ignore[arg-type]
    except Exception as exc:  # any driver or filesystem failure: one clear message, no traceback
        raise StoreUnavailable(f"cannot migrate the database: {exc.__class__.__name__}: {exc}") from exc
    log.info("database is at revision %s", HEAD_REVISION)
    return HEAD_REVISION


def ensure_upgraded(url: str) -> None:
    """Upgrade only when needed; the common case (already at head) costs one SQLite read."""
    if current_revision_fast(url) != HEAD_REVISION:
        upgrade(url)
