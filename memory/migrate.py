"""Apply Alembic migrations programmatically, and refuse a schema this code cannot use.

Alembic is synchronous and our ``env.py`` runs its own event loop, so these functions must be
called outside a running loop (async callers use ``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from memory._url import describe, sqlite_path
from memory.errors import SchemaMismatch, StoreError, StoreUnavailable, is_lock_timeout

log = logging.getLogger(__name__)

# The newest revision in migrations/versions; a test keeps the two in step. It lets start-up
# skip importing Alembic when the database is already current.
HEAD_REVISION = "0007_scheduled_jobs"
# The tables the head schema has (the models' tables; a test keeps them in step), so a
# database stamped at head but emptied or half-restored is refused at start, not mid-chat.
HEAD_TABLES = frozenset(
    {
        "users",
        "chats",
        "sessions",
        "messages",
        "updates",
        "episodes",
        "answer_recalls",
        "usage",
        "kv",
        "scheduled_jobs",
        "job_runs",
    }
)
SQLITE_TABLES = frozenset({"episodes_fts"})  # the full-text index exists on SQLite only

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


@dataclass(frozen=True, slots=True)
class SchemaState:
    """What a database says about its schema: the stamped revision and the tables it has."""

    revision: str | None
    tables: frozenset[str]


def alembic_config(url: str) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = url
    return config


def known_revisions() -> frozenset[str]:
    """Every revision this code ships; a stamped revision outside it came from a newer omni."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite:///unused.db"))  # type: ignore[arg-type]
    return frozenset(s.revision for s in script.walk_revisions())


def _sqlite_state(url: str) -> SchemaState | None:
    """The state of an SQLite file, read with the stdlib (None if missing or unreadable)."""
    path = sqlite_path(url)
    if path is None or not path.exists():
        return None
    try:
        # timeout: the seconds of memory.db.BUSY_TIMEOUT_MS (imported there with SQLAlchemy).
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
            names = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            tables = frozenset(str(r[0]) for r in names)
            row = None
            if "alembic_version" in tables:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error as exc:
        if is_lock_timeout(exc):  # waiting again in Alembic would only double the wait
            from memory.db import locked_error

            raise locked_error(url) from exc
        return None
    return SchemaState(str(row[0]) if row else None, tables)


async def _server_state(url: str) -> SchemaState:
    from sqlalchemy import inspect, text

    from memory.db import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            tables = frozenset(names)
            revision = None
            if "alembic_version" in tables:
                revision = await conn.scalar(text("SELECT version_num FROM alembic_version"))
            return SchemaState(None if revision is None else str(revision), tables)
    finally:
        await engine.dispose()


def read_state(url: str) -> SchemaState:
    """The schema state of any database (an SQLite file that does not exist yet is empty)."""
    if sqlite_path(url) is not None:
        return _sqlite_state(url) or SchemaState(None, frozenset())
    return asyncio.run(_server_state(url))


def current_revision_fast(url: str) -> str | None:
    """The revision stamped in an SQLite file, read with the stdlib (None if unknown)."""
    state = _sqlite_state(url)
    return None if state is None else state.revision


def check_schema(url: str, state: SchemaState, known: frozenset[str] | None = None) -> None:
    """Raise :class:`SchemaMismatch` for a database newer than this code or missing tables.

    ``known`` (the shipped revisions) is only needed for a revision other than head.
    """
    where = describe(url)
    revision = state.revision
    if revision is not None and revision != HEAD_REVISION:
        if revision not in (known if known is not None else known_revisions()):
            raise SchemaMismatch(
                f"the database {where} is at revision {revision}, newer than this omni "
                f"(head {HEAD_REVISION}): upgrade omni"
            )
        return  # an older known revision: upgrading will create what is missing
    if revision is None:
        return
    wanted = HEAD_TABLES | (SQLITE_TABLES if sqlite_path(url) is not None else frozenset())
    missing = sorted(wanted - state.tables)
    if missing:
        raise SchemaMismatch(
            f"the database {where} is stamped at revision {revision} but has no table "
            f"{', '.join(missing)}: its schema is damaged; restore it from a backup, or move the "
            "file away and run `omni db upgrade` to start an empty one"
        )


def upgrade(url: str) -> str:
    """Bring the database at ``url`` to the newest revision; returns that revision."""
    from alembic import command

    try:
        known = known_revisions()
        check_schema(url, read_state(url), known)  # alembic would only say "can't locate revision"
        command.upgrade(alembic_config(url), "head")  # type: ignore[arg-type]
        check_schema(url, read_state(url), known)  # stamped at head yet missing tables: no-op above
    except StoreError:
        raise
    except Exception as exc:  # any driver or filesystem failure: one clear message, no traceback
        if is_lock_timeout(exc):
            from memory.db import locked_error

            raise locked_error(url) from exc
        raise StoreUnavailable(f"cannot migrate the database: {exc.__class__.__name__}: {exc}") from exc
    log.info("database is at revision %s", HEAD_REVISION)
    return HEAD_REVISION


def ensure_upgraded(url: str) -> None:
    """Upgrade only when needed; the common case (already at head) costs one SQLite read."""
    state = _sqlite_state(url)
    if state is not None and state.revision == HEAD_REVISION:
        check_schema(url, state)
        return
    upgrade(url)
