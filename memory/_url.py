"""Database URL helpers that need no SQLAlchemy import (start-up paths use them)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote


def sqlite_path(url: str) -> Path | None:
    """The database file of an SQLite URL (None for other databases or in-memory)."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith("sqlite"):
        return None
    # sqlite:///relative.db and sqlite:////absolute.db: everything after the third slash.
    database = unquote(rest[1:].split("?", 1)[0]) if rest.startswith("/") else ""
    if not database or database == ":memory:":
        return None
    return Path(database)


def describe(url: str) -> str:
    """How messages name the database: the SQLite file, or the URL with its password hidden."""
    path = sqlite_path(url)
    if path is not None:
        return str(path)
    from omni.settings import mask_url  # only on an error path: it costs the pydantic import

    return mask_url(url)
