from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from memory import Store, open_store
from memory.migrate import upgrade


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'omni.db'}"


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    await asyncio.to_thread(upgrade, db_url)
    async with open_store(db_url) as s:
        yield s
