"""An in-process MCP client on a freshly built skills server, per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult, TextContent

from mcp_server.server import build_server
from omni.settings import Settings


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path / "ws"


@pytest.fixture
def connect(make_settings: Callable[..., Settings], workspace: Path) -> Callable[..., Any]:
    """``async with connect(**settings) as client`` — a legacy-handshake client, in process."""

    def factory(**overrides: Any) -> Client:
        overrides.setdefault("workspace", workspace)
        return Client(build_server(make_settings(**overrides)), mode="legacy")

    return factory


@pytest.fixture
async def client(connect: Callable[..., Client]) -> AsyncIterator[Client]:
    async with connect() as c:
        yield c


# --- The real ``omni mcp`` over stdio, for the attack tests (tests/skills/test_*_attacks.py) ---

NON_ADMIN = {"omni/user_id": 4242, "omni/is_admin": False}
ADMIN = {"omni/user_id": 1, "omni/is_admin": True}


def non_admin_root(workspace: Path) -> Path:
    """The folder a non-admin caller (NON_ADMIN) works in."""
    return workspace / "users" / str(NON_ADMIN["omni/user_id"])


RealServer = Callable[..., AbstractAsyncContextManager[ClientSession]]


@pytest.fixture
def root(workspace: Path) -> Path:
    """The non-admin caller's folder (NON_ADMIN's), created."""
    folder = non_admin_root(workspace)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def real_server(omni_cmd: list[str], workspace: Path, tmp_path: Path) -> RealServer:
    """``async with real_server(OMNI_X="...") as session`` — a real ``omni mcp`` child over stdio.

    The child gets a minimal environment (PATH, HOME in tmp) plus the temp data dir, the
    workspace and any ``OMNI_*`` overrides, so a test controls everything it can see.
    """

    @asynccontextmanager
    async def start(**env: str) -> AsyncIterator[ClientSession]:
        child_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path / "home"),
            "OMNI_DATA_DIR": str(tmp_path / "data"),
            "OMNI_WORKSPACE": str(workspace),
            "OMNI_LOG_LEVEL": "WARNING",
            **env,
        }
        params = StdioServerParameters(command=omni_cmd[0], args=[*omni_cmd[1:], "mcp"], env=child_env)
        with (tmp_path / "omni-mcp.log").open("a") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as s:
                await s.initialize()
                yield s

    return start
