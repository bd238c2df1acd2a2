"""The MCP check: every server the agent would use (built-in skills + OMNI_MCP_CONFIG) is
started and initialised, one line each with its tool count and start-up time.

Each server gets an :class:`McpConnection` of its own, the client the agent's toolbox uses,
so that each can be timed; all start at once.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from omni.doctor_check import Check, since
from omni.errors import SettingsError
from omni.logging import RedactingFilter
from omni.settings import Settings, mask_urls_in

if TYPE_CHECKING:
    from agent.mcp_config import ServerSpec, StdioSpec

MCP_START_TIMEOUT_S = 20.0  # what the agent's toolbox waits for a server to start
# A server's environment variables whose values are secrets, kept out of its error line.
_SECRET_NAME = re.compile(r"key|token|secret|pass|auth|credential", re.IGNORECASE)


async def check_mcp_servers(settings: Settings) -> list[Check]:
    from agent.mcp_config import server_specs

    try:
        specs = server_specs(settings)
    except SettingsError as exc:
        return [Check.failed("mcp", str(exc))]
    if not specs:
        return [Check.skipped("mcp", "no servers configured (the built-in skills server is disabled)")]
    # The MCP client modules take ~0.5 s to import: off the loop, where the other probes run.
    await asyncio.to_thread(_import_client)
    return list(await asyncio.gather(*(_check_server(name, spec) for name, spec in specs.items())))


async def _check_server(name: str, spec: ServerSpec) -> Check:
    from agent.mcp_config import StdioSpec
    from agent.mcp_connection import McpConnection, ServerGone

    label = f"mcp {name}"
    if isinstance(spec, StdioSpec) and not _runnable(spec):
        return Check.failed(label, f"the command {spec.command!r} is not found")
    conn = McpConnection(name, spec, start_timeout=MCP_START_TIMEOUT_S, on_tools_changed=lambda _: None)
    started = time.perf_counter()
    try:
        await conn.ensure()
        count = len(conn.tools)
        return Check.ok(label, f"{count} tool{'' if count == 1 else 's'}, started in {since(started)}")
    except ServerGone:
        return Check.failed(label, _reason(spec, conn.error or "it did not start"))
    finally:
        await conn.close()


def _runnable(spec: StdioSpec) -> bool:
    """Whether the process can be started: looked up as the MCP SDK will (the server's own
    PATH if its env sets one; a relative path from its working directory)."""
    if os.sep in spec.command:
        return os.access(Path(spec.cwd or ".") / spec.command, os.X_OK)
    return shutil.which(spec.command, path=spec.env.get("PATH")) is not None


def _reason(spec: ServerSpec, error: str) -> str:
    from agent.mcp_config import StdioSpec

    if isinstance(spec, StdioSpec):
        if "Connection closed" in error:
            # The SDK's words when the process ends before the handshake; its stderr says why.
            error = "the process exited before the MCP handshake (its error output is on stderr)"
        secrets = [value for key, value in spec.env.items() if _SECRET_NAME.search(key)]
    else:
        # Streamable HTTP and then SSE were tried: the same failure twice is said once.
        error = f"{spec.url}: {'; '.join(dict.fromkeys(error.split('; ')))}"
        # "Bearer <token>" whole, and the token alone.
        secrets = [*spec.headers.values(), *(v.rpartition(" ")[2] for v in spec.headers.values())]
    # URLs (the server's, or one in the error) may carry user:key@.
    return RedactingFilter(secrets).redact(mask_urls_in(error))


def _import_client() -> None:
    import mcp.client.sse  # noqa: F401
    import mcp.client.stdio  # noqa: F401
    import mcp.client.streamable_http  # noqa: F401
