"""The memory skill in process: remember, recall and forget on the bot's store, per owner."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_server.server import build_server
from memory.migrate import HEAD_REVISION, upgrade
from memory.store import open_store
from omni.errors import SettingsError
from omni.settings import Settings
from skills._context import Caller
from skills.memory.tools import owner_of
from tests.skills.conftest import text_of

pytestmark = pytest.mark.anyio

ALICE = {"omni/user_id": 111, "omni/is_admin": False}
BOB = {"omni/user_id": 222, "omni/is_admin": False}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'omni.db'}"


@pytest.fixture
async def migrated(db_url: str) -> str:
    await asyncio.to_thread(upgrade, db_url)
    return db_url


def exists(path: Path) -> bool:
    return path.exists()


async def call(client: Client, tool: str, meta: Any = None, **args: Any) -> tuple[bool, str, Any]:
    result = await client.call_tool(tool, args, meta=meta)
    return result.is_error, text_of(result), result.structured_content


def test_owners_are_the_bots_private_chat_owner_or_the_ide_setting() -> None:
    assert owner_of(Caller(user_id=42), None) == "user:42"
    assert owner_of(Caller(user_id=42, is_admin=True), 7) == "user:42"  # _meta wins
    assert owner_of(Caller(), 7) == "user:7"
    assert owner_of(Caller(), None) == "local:ide"


async def test_remember_then_recall_and_forget(client: Client, migrated: str) -> None:
    err, text, _ = await call(client, "remember", meta=ALICE, text="My bike lock code is 4512.")
    assert not err and text.startswith("remembered as memory ")
    episode_id = int(text.rsplit(" ", 1)[1])

    err, _, data = await call(client, "recall", meta=ALICE, query="what is the code of my bike lock?")
    assert not err and data["owner"] == "user:111"
    assert [(m["id"], m["text"], m["speaker"]) for m in data["memories"]] == [
        (episode_id, "My bike lock code is 4512.", "user")
    ]

    err, text, _ = await call(client, "forget", meta=ALICE, id=episode_id)
    assert (err, text) == (False, f"forgot memory {episode_id}")
    err, text, _ = await call(client, "forget", meta=ALICE, id=episode_id)
    assert err and text.endswith(f"memory {episode_id} not found")
    _, _, data = await call(client, "recall", meta=ALICE, query="bike lock code")
    assert data["memories"] == []


async def test_each_caller_recalls_only_their_own_memory(client: Client, migrated: str) -> None:
    await call(client, "remember", meta=ALICE, text="Alice hides the spare key under the cactus.")
    await call(client, "remember", meta=BOB, text="Bob hides the spare key in the mailbox.")
    await call(client, "remember", text="The IDE hides the spare key in a drawer.")
    for meta, where in ((ALICE, "cactus"), (BOB, "mailbox"), (None, "drawer")):
        _, _, data = await call(client, "recall", meta=meta, query="where is the spare key?")
        assert [where in m["text"] for m in data["memories"]] == [True], meta


async def test_an_ide_shares_the_memory_of_omni_memory_user(
    connect: Callable[..., Client], migrated: str
) -> None:
    async with open_store(migrated) as store:
        await store.episodes.add("user:111", "I start the new job at Zeiss on Monday.", speaker="user")
    async with connect(memory_user=111) as ide:
        _, _, data = await call(ide, "recall", query="where is my new job?")
        assert data["owner"] == "user:111"
        assert [m["text"] for m in data["memories"]] == ["I start the new job at Zeiss on Monday."]
        err, text, _ = await call(ide, "remember", text="Zeiss badge number 77.")
        assert not err
    # Alice (user 111) on Telegram sees the note her IDE kept, first for its words
    _, _, data = await call_with(connect, "recall", ALICE, query="Zeiss badge")
    assert [m["text"] for m in data["memories"]][0] == "Zeiss badge number 77."


async def call_with(
    connect: Callable[..., Client], tool: str, meta: Any, **args: Any
) -> tuple[bool, str, Any]:
    async with connect() as client:
        return await call(client, tool, meta, **args)


async def test_recall_is_capped_by_limit(client: Client, migrated: str) -> None:
    for i in range(8):
        await call(client, "remember", meta=ALICE, text=f"Grocery list item {i}: tomatoes")
    _, _, data = await call(client, "recall", meta=ALICE, query="tomatoes", limit=3)
    assert len(data["memories"]) == 3
    err, _, _ = await call(client, "recall", meta=ALICE, query="tomatoes", limit=500)
    assert err


async def test_blank_or_huge_notes_are_refused(client: Client, migrated: str) -> None:
    err, text, _ = await call(client, "remember", meta=ALICE, text="   \n ")
    assert err and "blank" in text
    err, _, _ = await call(client, "remember", meta=ALICE, text="x" * 8_001)
    assert err


@pytest.mark.parametrize(
    "query",
    ['"', "*", "NEAR(", "a -b", "AND OR NOT", "(((", "🎉🎉 emoji", "x" * 10_000, "", "col:val ^start"],
)
async def test_hostile_queries_answer_without_error(client: Client, migrated: str, query: str) -> None:
    await call(client, "remember", meta=ALICE, text='He said "NEAR(" and AND OR -- 🎉 once.')
    err, text, data = await call(client, "recall", meta=ALICE, query=query)
    assert not err, text
    assert isinstance(data["memories"], list)


async def test_server_starts_without_touching_the_database(
    connect: Callable[..., Client], tmp_path: Path
) -> None:
    async with connect() as client:
        err, _, _ = await call(client, "current_time")
        assert not err
    assert not (tmp_path / "data" / "omni.db").exists()


async def test_an_unmigrated_database_says_to_run_omni_db_upgrade(
    client: Client, db_url: str, tmp_path: Path
) -> None:
    err, text, _ = await call(client, "remember", meta=ALICE, text="x")
    assert err and "omni db upgrade" in text and "revision none" in text
    assert not (tmp_path / "data" / "omni.db").exists()  # the check did not create it
    await asyncio.to_thread(upgrade, db_url)  # once upgraded, the same server works
    err, _, _ = await call(client, "remember", meta=ALICE, text="now it works")
    assert not err


async def test_an_older_revision_says_to_run_omni_db_upgrade(client: Client, migrated: str) -> None:
    path = Path(migrated.removeprefix("sqlite+aiosqlite:///"))
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001_initial'")
    err, text, _ = await call(client, "recall", meta=ALICE, query="x")
    assert err and "0001_initial" in text and HEAD_REVISION in text and "omni db upgrade" in text


async def test_a_newer_database_is_refused_without_leaking_its_path(client: Client, migrated: str) -> None:
    path = Path(migrated.removeprefix("sqlite+aiosqlite:///"))
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    err, text, _ = await call(client, "recall", meta=ALICE, query="x")
    assert err and "omni db upgrade" in text and str(path) not in text


async def test_the_store_is_closed_when_the_server_stops(
    make_settings: Callable[..., Settings], migrated: str
) -> None:
    server = build_server(make_settings(workspace=Path("ws")))
    async with Client(server, mode="legacy") as client:
        await call(client, "remember", meta=ALICE, text="closing time")
        await call(client, "search_knowledge", query="anything")
        assert server.stores.opened == (True, True)
    assert server.stores.opened == (False, False)
    # the last connection closed: SQLite folded its write-ahead log back into the file
    assert not exists(Path(migrated.removeprefix("sqlite+aiosqlite:///") + "-wal"))


def test_start_up_imports_no_database_code(tmp_path: Path) -> None:
    """``omni mcp`` start-up stays lean: SQLAlchemy and Alembic load on the first memory call."""
    code = (
        "import sys; from omni.settings import load_settings; from mcp_server.server import build_server; "
        "build_server(load_settings()); "
        "print(sorted({'sqlalchemy', 'alembic', 'aiosqlite'} & set(sys.modules)))"
    )
    env = {"PATH": os.environ.get("PATH", ""), "OMNI_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"


def test_omni_memory_user_is_an_id_or_unset(make_settings: Callable[..., Settings]) -> None:
    assert make_settings(memory_user="1001").memory_user == 1001
    assert make_settings(memory_user=" ").memory_user is None  # OMNI_MEMORY_USER= in a compose file
    with pytest.raises(SettingsError, match="OMNI_MEMORY_USER"):
        make_settings(memory_user="me")
