"""The baseline for bench/mcp_latency.py: a bare MCP SDK server with one trivial tool, over stdio.

Its tool does the same trivial work as omni's ``current_time`` and returns the same kind of
result (a pydantic model: structured output plus its JSON text), so the comparison measures
the servers, not two different result shapes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel

server: MCPServer = MCPServer("bare")


class Now(BaseModel):
    timezone: str
    iso: str
    date: str
    time: str
    weekday: str
    utc_offset: str


@server.tool()
async def current_time(timezone: str = "UTC") -> Now:
    """The current date and time (UTC)."""
    now = datetime.now(UTC)
    return Now(
        timezone=timezone,
        iso=now.isoformat(timespec="seconds"),
        date=now.date().isoformat(),
        time=now.strftime("%H:%M:%S"),
        weekday=now.strftime("%A"),
        utc_offset="+00:00",
    )


if __name__ == "__main__":
    server.run("stdio")
