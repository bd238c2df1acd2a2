"""Every tool runs under the server's own time limit (OMNI_TOOL_TIMEOUT), through the real server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.mcp_server.skillkit import write_skill
from tests.skills.conftest import NON_ADMIN, RealServer, text_of

pytestmark = pytest.mark.anyio

SLOW_TOOLS = '''
import anyio


async def linger(seconds: float) -> str:
    """Wait, then answer."""
    await anyio.sleep(seconds)
    return "done"
'''


async def test_a_tool_past_the_limit_is_stopped_and_the_server_goes_on(
    real_server: RealServer, tmp_path: Path
) -> None:
    write_skill(tmp_path / "extra", "slow", SLOW_TOOLS)
    async with real_server(OMNI_TOOL_TIMEOUT="1", OMNI_SKILLS_DIRS=str(tmp_path / "extra")) as session:
        started = time.monotonic()
        result = await session.call_tool("linger", {"seconds": 30}, meta=NON_ADMIN)
        assert time.monotonic() - started < 5
        assert result.is_error and "took longer than 1 s" in text_of(result)
        quick = await session.call_tool("linger", {"seconds": 0.01}, meta=NON_ADMIN)
        assert not quick.is_error and text_of(quick) == "done"
