"""The baseline for bench/mcp_latency.py: a bare MCP SDK server with one trivial tool, over stdio."""

from __future__ import annotations

from datetime import UTC, datetime

from mcp.server.mcpserver import MCPServer

server: MCPServer = MCPServer("bare")


@server.tool()
async def current_time(timezone: str = "UTC") -> str:
    """The current UTC time (the same trivial work as omni's time tool)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


if __name__ == "__main__":
    server.run("stdio")
