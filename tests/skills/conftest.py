"""An in-process MCP client on a freshly built skills server, per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
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
