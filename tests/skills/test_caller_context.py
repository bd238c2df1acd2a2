from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from mcp import Client

from skills._context import Caller, caller_from_meta
from skills._tool import SkillError
from tests.skills.conftest import text_of

pytestmark = pytest.mark.anyio

ALICE = {"omni/user_id": 111, "omni/is_admin": False}
BOB = {"omni/user_id": 222}
ADMIN = {"omni/user_id": 999, "omni/is_admin": True}


def test_caller_is_read_from_meta() -> None:
    assert caller_from_meta(None) == Caller()
    assert caller_from_meta({"progressToken": 1}) == Caller()
    assert caller_from_meta(ALICE) == Caller(user_id=111, is_admin=False)
    assert caller_from_meta(ADMIN).unrestricted
    assert not caller_from_meta(BOB).unrestricted
    with pytest.raises(SkillError):
        caller_from_meta({"omni/user_id": "111"})


async def test_non_admins_get_their_own_folder(client: Client, workspace: Path) -> None:
    await client.call_tool("write_file", {"path": "diary.txt", "content": "alice"}, meta=ALICE)
    await client.call_tool("write_file", {"path": "diary.txt", "content": "bob"}, meta=BOB)
    assert (workspace / "users" / "111" / "diary.txt").read_text() == "alice"
    assert (workspace / "users" / "222" / "diary.txt").read_text() == "bob"
    result = await client.call_tool("read_file", {"path": "diary.txt"}, meta=BOB)
    assert text_of(result) == "bob"


async def test_a_user_cannot_reach_another_users_folder(client: Client, workspace: Path) -> None:
    await client.call_tool("write_file", {"path": "diary.txt", "content": "alice"}, meta=ALICE)
    for path in ("../111/diary.txt", str(workspace / "users" / "111" / "diary.txt")):
        result = await client.call_tool("read_file", {"path": path}, meta=BOB)
        assert result.is_error and "alice" not in text_of(result)


async def test_admins_and_ides_see_the_whole_workspace(client: Client, workspace: Path) -> None:
    await client.call_tool("write_file", {"path": "diary.txt", "content": "alice"}, meta=ALICE)
    for meta in (ADMIN, None):
        result = await client.call_tool("read_file", {"path": "users/111/diary.txt"}, meta=meta)
        assert text_of(result) == "alice"


async def test_git_uses_the_callers_folder(connect: Callable[..., Client], workspace: Path) -> None:
    (workspace / "users" / "111").mkdir(parents=True)
    async with connect() as client:
        result = await client.call_tool("git_status", {}, meta=ALICE)
    assert result.is_error and "not a git repository" in text_of(result).lower()
