"""``omni doctor``: one line per check, ✓ or ✗, exit 1 on any failure.

Checks: settings, database (exists and at head), LLM endpoint, Telegram token (getMe), and
each MCP server the agent would start (built-in skills + OMNI_MCP_CONFIG).

Settings come first; if they are invalid nothing else can be checked and the command ends
with exit 2 like every other command.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from omni.errors import SettingsError
from omni.settings import Settings, load_settings

PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'✓' if self.ok else '✗'} {self.name}: {self.detail}"


async def check_database(settings: Settings) -> Check:
    from memory._url import sqlite_path
    from memory.migrate import HEAD_REVISION, current_revision_fast

    path = sqlite_path(settings.database_url)
    if path is not None and not path.exists():
        return Check("database", False, f"{path} does not exist yet (run `omni db upgrade`)")
    if path is not None:
        revision = current_revision_fast(settings.database_url)
    else:
        revision = await _server_revision(settings.database_url)
    if revision != HEAD_REVISION:
        return Check(
            "database", False, f"at revision {revision}, head is {HEAD_REVISION} (run `omni db upgrade`)"
        )
    where = str(path) if path is not None else settings.database_url.split("@")[-1]
    return Check("database", True, f"{where} at revision {revision}")


async def _server_revision(url: str) -> str | None:
    from sqlalchemy import text

    from memory.db import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            value = await conn.scalar(text("SELECT version_num FROM alembic_version"))
            return None if value is None else str(value)
    finally:
        await engine.dispose()


async def check_llm(settings: Settings) -> Check:
    if not settings.llm_model:
        return Check("llm", False, "OMNI_LLM_MODEL is not set")
    if not settings.llm_api_base:
        return Check("llm", True, f"model {settings.llm_model} (provider endpoint not probed)")
    import httpx

    headers = {}
    if settings.llm_api_key is not None:
        headers["Authorization"] = f"Bearer {settings.llm_api_key.get_secret_value()}"
    url = settings.llm_api_base.rstrip("/") + "/models"
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client:
            response = await client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return Check("llm", False, f"{settings.llm_api_base} unreachable ({exc.__class__.__name__})")
    if response.status_code in (401, 403):
        return Check(
            "llm", False, f"{settings.llm_api_base} refused the API key (HTTP {response.status_code})"
        )
    return Check(
        "llm", True, f"model {settings.llm_model} at {settings.llm_api_base} (HTTP {response.status_code})"
    )


async def check_telegram(settings: Settings) -> Check:
    if settings.telegram_token is None:
        return Check("telegram", False, "OMNI_TELEGRAM_TOKEN is not set")
    import httpx

    url = f"{settings.telegram_api_url}/bot{settings.telegram_token.get_secret_value()}/getMe"
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client:
            response = await client.get(url)
        data = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return Check("telegram", False, f"Bot API unreachable ({exc.__class__.__name__})")
    if not data.get("ok"):
        return Check("telegram", False, f"token rejected: {data.get('description', response.status_code)}")
    return Check("telegram", True, f"@{data['result'].get('username')} via {settings.telegram_api_url}")


async def check_mcp_servers(settings: Settings) -> list[Check]:
    """Start every MCP server the agent would use (built-in skills + OMNI_MCP_CONFIG)."""
    from agent.toolbox import ToolBox

    try:
        box = ToolBox.from_settings(settings)
    except SettingsError as exc:
        return [Check("mcp", False, str(exc))]
    try:
        await box.start()
        return [
            Check(
                f"mcp {s.name}",
                s.state == "ready",
                f"{s.tools} tools" if s.state == "ready" else str(s.error),
            )
            for s in box.status()
        ] or [Check("mcp", True, "no servers configured")]
    finally:
        await box.aclose()


async def _one(check: Callable[[Settings], Awaitable[Check]], settings: Settings) -> list[Check]:
    return [await check(settings)]


CHECKS: list[Callable[[Settings], Awaitable[Check]]] = [check_llm, check_telegram]


async def run_doctor() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(Check("settings", False, str(exc)).line())
        return 2
    print(Check("settings", True, f"valid (data in {settings.data_dir})").line())
    # The database first: starting the skills server below migrates it as a side effect.
    results = [await check_database(settings)]
    groups = await asyncio.gather(*(_one(check, settings) for check in CHECKS), check_mcp_servers(settings))
    results += [result for group in groups for result in group]
    for result in results:
        print(result.line())
    sys.stdout.flush()
    return 0 if all(r.ok for r in results) else 1
