"""The memory skill under attack, through the real ``omni mcp`` over stdio: a non-admin reaches
only their own memory, whatever they send."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession

from memory.migrate import upgrade
from memory.store import open_store
from tests.skills.conftest import ADMIN, NON_ADMIN, RealServer, text_of

pytestmark = pytest.mark.anyio

SECRET = "quokka"
HOSTILE = ['"', "*", "NEAR(quokka, x)", "-quokka", "AND OR NOT", "((quokka", "🎉 quokka", "q" * 10_000]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "omni.db"


@pytest.fixture
async def others(db: Path) -> dict[str, int]:
    """A migrated database where other owners keep the secret word; their episode ids."""
    url = f"sqlite+aiosqlite:///{db}"
    await asyncio.to_thread(upgrade, url)
    ids = {}
    async with open_store(url) as store:
        for owner in (f"user:{ADMIN['omni/user_id']}", "user:5151", "chat:-100777", "local:ide"):
            ids[owner] = await store.episodes.add(
                owner, f"{owner} keeps the {SECRET} in the shed", speaker="user"
            )
    return ids


async def call(
    session: ClientSession, tool: str, meta: Any = NON_ADMIN, **args: Any
) -> tuple[bool, str, Any]:
    result = await session.call_tool(tool, args, meta=meta)
    return result.is_error, text_of(result), result.structured_content


def exists(path: Path) -> bool:
    return path.exists()


def episode_owners(db: Path) -> list[str]:
    with closing(sqlite3.connect(db)) as conn:
        return [r[0] for r in conn.execute("SELECT owner_key FROM episodes ORDER BY id")]


async def test_a_non_admin_never_recalls_anyone_elses_memory(
    real_server: RealServer, others: dict[str, int]
) -> None:
    async with real_server() as s:
        err, _, _ = await call(s, "remember", text=f"my own {SECRET} lives in a box")
        assert not err
        for query in [SECRET, "shed", "user:1", "chat:-100777", "local:ide", "owner_key", *HOSTILE]:
            err, text, data = await call(s, "recall", query=query, limit=20)
            assert not err, (query, text)
            assert data["owner"] == "user:4242"
            assert all(m["text"] == f"my own {SECRET} lives in a box" for m in data["memories"]), query
        # claiming admin rights does not widen memory: an admin has one memory too, their own
        _, _, data = await call(s, "recall", {"omni/user_id": 4242, "omni/is_admin": True}, query=SECRET)
        assert [m["text"] for m in data["memories"]] == [f"my own {SECRET} lives in a box"]


async def test_forgetting_a_foreign_id_says_not_found_and_deletes_nothing(
    real_server: RealServer, others: dict[str, int], db: Path
) -> None:
    before = episode_owners(db)
    async with real_server() as s:
        replies = []
        for episode_id in [*others.values(), 987_654]:
            err, text, _ = await call(s, "forget", id=episode_id)
            assert err
            replies.append(text.replace(str(episode_id), "N"))
        assert len(set(replies)) == 1 and replies[0].endswith(
            "memory N not found"
        )  # nothing tells them apart
        for bad in (0, -1, "1; DELETE FROM episodes", 2**70):
            err, _, _ = await call(s, "forget", id=bad)
            assert err
    assert episode_owners(db) == before


async def test_meta_of_the_wrong_type_is_refused(real_server: RealServer, others: dict[str, int]) -> None:
    async with real_server() as s:
        for meta in ({"omni/user_id": "1"}, {"omni/user_id": True}, {"omni/user_id": 1.0}):
            err, text, _ = await call(s, "recall", meta, query=SECRET)
            assert err and SECRET not in text


async def test_an_ide_without_omni_memory_user_has_its_own_memory(
    real_server: RealServer, others: dict[str, int]
) -> None:
    async with real_server() as s:
        _, _, data = await call(s, "recall", None, query=SECRET)
        assert data["owner"] == "local:ide"
        assert [m["id"] for m in data["memories"]] == [others["local:ide"]]


async def test_hostile_text_is_stored_verbatim_and_recalled(real_server: RealServer, db: Path) -> None:
    await asyncio.to_thread(upgrade, f"sqlite+aiosqlite:///{db}")
    note = "'); DROP TABLE episodes; -- \" NEAR( * 🎉 quokka"
    async with real_server() as s:
        err, _, _ = await call(s, "remember", text=note)
        assert not err
        _, _, data = await call(s, "recall", query=note)
        assert [m["text"] for m in data["memories"]] == [note]
    assert episode_owners(db) == ["user:4242"]


async def test_a_database_that_is_not_migrated_answers_one_clear_line(
    real_server: RealServer, db: Path
) -> None:
    async with real_server() as s:
        err, text, _ = await call(s, "recall", query=SECRET)
        assert err and "omni db upgrade" in text and "Traceback" not in text
    assert not exists(db)
