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
from omni.settings import Settings, check_folders, load_settings, mask_url, mask_urls_in, require_driver

PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'✓' if self.ok else '✗'} {self.name}: {self.detail}"


async def check_database(settings: Settings) -> Check:
    from memory._url import describe, sqlite_path
    from memory.errors import StoreError
    from memory.migrate import HEAD_REVISION, check_schema, known_revisions, read_state

    url = settings.database_url
    where = describe(url)  # the SQLite file, or the URL with its password hidden
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return Check("database", False, f"{path} does not exist yet (run `omni db upgrade`)")
    try:
        require_driver(url)
    except SettingsError as exc:
        return Check("database", False, str(exc))
    try:
        state = await asyncio.to_thread(read_state, url)
        known = await asyncio.to_thread(known_revisions)
        check_schema(url, state, known)
    except StoreError as exc:  # locked, newer than this omni, or damaged: our words, no secrets
        return Check("database", False, str(exc))
    except Exception as exc:  # driver or server failure; its text may hold the URL, so name it only
        return Check("database", False, f"{where} cannot be opened ({exc.__class__.__name__})")
    if state.revision is None:
        return Check("database", False, f"{where} has no schema yet (run `omni db upgrade`)")
    if state.revision != HEAD_REVISION:
        return Check(
            "database",
            False,
            f"{where} is at revision {state.revision}, head is {HEAD_REVISION} (run `omni db upgrade`)",
        )
    return Check("database", True, f"{where} at revision {state.revision}")


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
    shown = mask_url(settings.llm_api_base)  # an endpoint may carry user:key@ credentials
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client:
            response = await client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return Check("llm", False, f"{shown} unreachable ({exc.__class__.__name__})")
    if response.status_code in (401, 403):
        return Check("llm", False, f"{shown} refused the API key (HTTP {response.status_code})")
    return Check("llm", True, f"model {settings.llm_model} at {shown} (HTTP {response.status_code})")


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
    via = mask_url(settings.telegram_api_url)
    return Check("telegram", True, f"@{data['result'].get('username')} via {via}")


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
                # A remote server's error names its URL, which may carry user:key@.
                f"{s.tools} tools" if s.state == "ready" else mask_urls_in(str(s.error)),
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
        check_folders(settings)  # as every other command does before it starts
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
