from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from mcp import Client

from tests.skills.conftest import text_of

pytestmark = pytest.mark.anyio


async def test_shell_is_absent_unless_enabled(client: Client) -> None:
    names = {t.name for t in (await client.list_tools()).tools}
    assert "run_command" not in names
    resources = {str(r.uri) for r in (await client.list_resources()).resources}
    assert "skill://shell" not in resources


async def test_shell_runs_in_the_workspace_with_timeout(
    connect: Callable[..., Client], workspace: Path
) -> None:
    async with connect(shell_enabled=True) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        annotations = tools["run_command"].annotations
        assert annotations and annotations.destructive_hint and not annotations.read_only_hint
        result = await client.call_tool("run_command", {"command": "pwd; echo oops >&2; exit 3"})
        expected = {"exit_code": 3, "stdout": f"{workspace}\n", "stderr": "oops\n", "timed_out": False}
        expected["truncated"] = False
        assert result.structured_content == expected
        slow = await client.call_tool("run_command", {"command": "sleep 5", "timeout_s": 0.3})
        assert slow.structured_content and slow.structured_content["timed_out"] is True
        escape = await client.call_tool("run_command", {"command": "pwd", "cwd": ".."})
        assert escape.is_error


async def test_shell_is_for_admins_only(connect: Callable[..., Client]) -> None:
    async with connect(shell_enabled=True) as client:
        result = await client.call_tool("run_command", {"command": "id"}, meta={"omni/user_id": 5})
        assert result.is_error and "admins only" in text_of(result)
        ok = await client.call_tool(
            "run_command", {"command": "true"}, meta={"omni/user_id": 5, "omni/is_admin": True}
        )
        assert not ok.is_error
