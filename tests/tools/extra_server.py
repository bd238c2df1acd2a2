"""A tiny third-party MCP server for the agent's tests: `python extra_server.py [stdio|http PORT]`."""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("extra")


@server.tool()
async def echo(text: str) -> str:
    """Repeat the text back."""
    return f"echo:{text}"


@server.tool()
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return "slept"


@server.tool()
async def fail() -> str:
    """Always raises."""
    raise RuntimeError("this tool always fails")


@server.tool()
async def die() -> str:
    """End the server process at once, as a crash would."""
    os._exit(1)


@server.tool()
async def big(size: int) -> str:
    """Return a long text."""
    return "x" * size


@server.tool(annotations=ToolAnnotations(destructive_hint=True, read_only_hint=False))
async def wipe(target: str) -> str:
    """Pretend to delete something."""
    return f"wiped {target}"


@server.tool(name="weird.name with spaces!")
async def weird() -> str:
    """A tool whose name no LLM provider accepts as is."""
    return "weird ok"


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
