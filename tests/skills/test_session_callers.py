"""A session caller (``omni/session`` in ``_meta``: an `omni gateway` session) is a non-admin
with a folder and a memory of its own, never the trusted IDE a caller without ``_meta`` is."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from memory.migrate import upgrade
from skills._context import Caller, caller_from_meta
from skills._tool import SkillError
from skills.memory.tools import owner_of
from tests.skills.conftest import text_of

pytestmark = pytest.mark.anyio

ALICE = {"omni/session": "gw:alice", "omni/is_admin": False}
BOB = {"omni/session": "gw:bob", "omni/is_admin": False}


def test_a_session_caller_is_restricted_and_owns_the_sessions_memory() -> None:
    alice = caller_from_meta(ALICE)
    assert alice == Caller(session="gw:alice") and not alice.unrestricted
    assert owner_of(alice, memory_user=7) == "local:gw:alice"  # never OMNI_MEMORY_USER's
    assert caller_from_meta({**ALICE, "omni/is_admin": True}).unrestricted  # as for a user id


@pytest.mark.parametrize(
    "session", ["gw:..", "gw:.", "gw:a/b", "gw:", "gw", ":a", "GW:a", 5, None, "gw:" + "a" * 129]
)
def test_a_malformed_session_is_refused(session: Any) -> None:
    with pytest.raises(SkillError):
        caller_from_meta({"omni/session": session})


@pytest.fixture
def operators_file(workspace: Path) -> Path:
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "private.txt").write_text("OPERATOR-SECRET-9")
    return workspace / "private.txt"


async def test_each_session_gets_its_own_folder_and_nothing_above_it(
    client: Client, workspace: Path, operators_file: Path
) -> None:
    await client.call_tool("write_file", {"path": "notes.txt", "content": "alice"}, meta=ALICE)
    await client.call_tool("write_file", {"path": "notes.txt", "content": "BOB-SECRET-7"}, meta=BOB)
    assert (workspace / "sessions" / "gw" / "alice" / "notes.txt").read_text() == "alice"
    assert (workspace / "sessions" / "gw" / "bob" / "notes.txt").read_text() == "BOB-SECRET-7"
    for path in ("../bob/notes.txt", "../../../private.txt", str(operators_file)):
        result = await client.call_tool("read_file", {"path": path}, meta=ALICE)
        assert result.is_error and "SECRET" not in text_of(result)


async def test_a_session_caller_gets_no_shell(connect: Callable[..., Client]) -> None:
    async with connect(shell_enabled=True) as client:
        result = await client.call_tool("run_command", {"command": "id"}, meta=ALICE)
    assert result.is_error and "admins only" in text_of(result)


async def test_a_session_remembers_and_recalls_only_its_own(client: Client, tmp_path: Path) -> None:
    await asyncio.to_thread(upgrade, f"sqlite+aiosqlite:///{tmp_path / 'data' / 'omni.db'}")
    await client.call_tool("remember", {"text": "Alice's locker code is 1234."}, meta=ALICE)
    mine = await client.call_tool("recall", {"query": "locker code"}, meta=ALICE)
    theirs = await client.call_tool("recall", {"query": "locker code"}, meta=BOB)
    assert mine.structured_content is not None and theirs.structured_content is not None
    assert mine.structured_content["owner"] == "local:gw:alice"
    assert [m["text"] for m in mine.structured_content["memories"]] == ["Alice's locker code is 1234."]
    assert theirs.structured_content["memories"] == []
