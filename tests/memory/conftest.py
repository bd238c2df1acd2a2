from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from memory import Store, open_store
from memory.migrate import upgrade


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A ``sqlite_only`` test runs with the SQLite ``db_url`` alone."""
    items[:] = [
        item
        for item in items
        if not (
            item.get_closest_marker("sqlite_only")
            and getattr(item, "callspec", None) is not None
            and item.callspec.params.get("db_url") == "postgresql"  # type: ignore[attr-defined]
        )
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every memory test runs on both databases omni supports."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'omni.db'}"


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    await asyncio.to_thread(upgrade, db_url)
    async with open_store(db_url) as s:
        yield s
