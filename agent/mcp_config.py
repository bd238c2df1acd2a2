"""``OMNI_MCP_CONFIG``: the Claude Desktop ``mcpServers`` file, as typed server specs.

The built-in skills server (``omni mcp`` over stdio, same interpreter) is always included as
``skills`` unless the file names a server ``skills`` with ``"disabled": true``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from omni.errors import SettingsError
from omni.settings import Settings

BUILTIN = "skills"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    disabled: bool = False
    # omni's own key: destructive tools of this server are offered to admins only.
    admin_only: bool = Field(default=False, alias="adminOnly")
    # Some clients (VS Code, Cursor) write the transport explicitly; accepted and checked.
    type: Literal["stdio", "http", "streamable-http", "sse"] | None = None


class StdioSpec(_Spec):
    command: str = Field(min_length=1)
    args: list[str] = []
    env: dict[str, str] = {}
    cwd: str | None = None
    builtin: bool = Field(default=False, exclude=True)


class RemoteSpec(_Spec):
    url: Annotated[str, Field(pattern=r"^https?://")]
    headers: dict[str, str] = {}


ServerSpec = StdioSpec | RemoteSpec


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mcpServers: dict[str, StdioSpec | RemoteSpec | _DisabledOnly]  # noqa: N815 - the file's own key


class _DisabledOnly(BaseModel):
    """``{"disabled": true}`` alone: enough to switch the built-in server off."""

    model_config = ConfigDict(extra="forbid")
    disabled: Literal[True]


_File.model_rebuild()


def _problem(path: Path, exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"] if p not in ("StdioSpec", "RemoteSpec", "_DisabledOnly"))
    if err["type"] == "extra_forbidden":
        return f"{path}: unknown key {where!r}"
    if err["type"] == "missing" and where == "mcpServers":
        return f'{path}: has no "mcpServers" object'
    if err["type"] == "missing":
        return f'{path}: {where} is missing (a server needs "command" or "url")'
    return f"{path}: {where}: {err['msg']}"


def load_mcp_file(path: Path) -> dict[str, ServerSpec | None]:
    """Parse the file; ``None`` marks a server that is only switched off."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"OMNI_MCP_CONFIG: cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise SettingsError(
            f"OMNI_MCP_CONFIG: {path} is not valid JSON (line {exc.lineno}: {exc.msg})"
        ) from None
    try:
        parsed = _File.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(f"OMNI_MCP_CONFIG: {_problem(path, exc)}") from None
    out: dict[str, ServerSpec | None] = {}
    for name, spec in parsed.mcpServers.items():
        out[name] = None if isinstance(spec, _DisabledOnly) or spec.disabled else spec
    return out


def builtin_spec(settings: Settings) -> StdioSpec:
    """``omni mcp`` with this interpreter, given exactly the settings the skills need.

    Secrets are not passed, but for the one the skills server itself uses: the web search
    provider's key. It runs in the data dir so a ``.env`` in the user's working directory is not
    read a second time.
    """
    env = {
        "OMNI_DATA_DIR": str(settings.data_dir),
        "OMNI_WORKSPACE": str(settings.workspace),
        "OMNI_DATABASE_URL": settings.database_url,
        "OMNI_SHELL_ENABLED": "true" if settings.shell_enabled else "false",
        "OMNI_WEB_ALLOW_PRIVATE": "true" if settings.web_allow_private else "false",
        "OMNI_LOG_LEVEL": "WARNING" if settings.log_level == "INFO" else settings.log_level,
        "OMNI_LOG_FORMAT": settings.log_format,  # its stderr is ours: one format for every line
    }
    env.update(_search_env(settings))
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # its working directory
    if settings.skills_dirs:
        import os

        env["OMNI_SKILLS_DIRS"] = os.pathsep.join(str(p) for p in settings.skills_dirs)
    return StdioSpec(
        command=sys.executable,
        args=["-m", "omni", "mcp"],
        env=env,
        cwd=str(settings.data_dir),
        builtin=True,
    )


def _search_env(settings: Settings) -> dict[str, str]:
    """The web search settings that are set (at most one provider), for the skills server."""
    brave, tavily = settings.brave_api_key, settings.tavily_api_key
    values = {
        "OMNI_SEARXNG_URL": settings.searxng_url,
        "OMNI_BRAVE_API_KEY": brave.get_secret_value() if brave else None,
        "OMNI_BRAVE_API_URL": settings.brave_api_url,
        "OMNI_TAVILY_API_KEY": tavily.get_secret_value() if tavily else None,
        "OMNI_TAVILY_API_URL": settings.tavily_api_url,
        "OMNI_WEB_SEARCH_ALLOW_PRIVATE": "true" if settings.web_search_allow_private else "false",
    }
    return {name: value for name, value in values.items() if value}


def server_specs(settings: Settings) -> dict[str, ServerSpec]:
    """Every server to start: the built-in one first, then the file's, disabled ones left out."""
    from_file = load_mcp_file(settings.mcp_config) if settings.mcp_config else {}
    specs: dict[str, ServerSpec] = {}
    if BUILTIN not in from_file:
        specs[BUILTIN] = builtin_spec(settings)
    for name, spec in from_file.items():
        if spec is not None:
            specs[name] = spec
    return specs
