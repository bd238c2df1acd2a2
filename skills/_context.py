"""What every skill tool receives: the server's settings slice and who is calling.

The server lifespan yields one :class:`SkillsContext`; tools read it as
``ctx.request_context.lifespan_context``. The caller (a Telegram user when the agent calls,
a restricted session such as ``gw:<id>`` for a gateway caller, nobody when an IDE does) travels
in the request's ``_meta`` and is resolved here, once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import anyio
from mcp.server.mcpserver import Context

from skills._stores import Stores
from skills._tool import SkillError

USER_ID_KEY = "omni/user_id"
IS_ADMIN_KEY = "omni/is_admin"
SESSION_KEY = "omni/session"
# ``kind:name``; the name becomes one folder name, so it starts with a letter or digit (never
# "." or "..") and holds no separator.
_SESSION = re.compile(r"[a-z]{1,16}:[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True, slots=True)
class WebSearch:
    """The one configured web search provider (``web_search`` exists only when there is one)."""

    provider: Literal["searxng", "brave", "tavily"]
    url: str  # SearXNG: the instance's base URL; Brave, Tavily: the search endpoint
    api_key: str | None = field(default=None, repr=False)
    allow_private: bool = False  # the endpoint may resolve to a loopback/private address


@dataclass(frozen=True, slots=True)
class SkillsContext:
    """Server-wide state the tools share; built once from Settings."""

    workspace: Path
    shell_enabled: bool = False
    web_allow_private: bool = False
    web_search: WebSearch | None = None
    max_write_bytes: int = 10 * 1024 * 1024
    quota_bytes: int = 200 * 1024 * 1024
    tool_timeout: float = 60.0
    # Whose memory a caller without ``_meta`` (an IDE) shares: a Telegram user id, or None.
    memory_user: int | None = None
    stores: Stores | None = None  # the memory store and knowledge index, opened on first use


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made the request: ``user_id`` is None for an IDE or other local client, and for a
    ``session`` caller (no Telegram user, e.g. ``gw:<id>`` from the gateway), who is restricted."""

    user_id: int | None = None
    is_admin: bool = False
    session: str | None = None

    @property
    def unrestricted(self) -> bool:
        """IDEs and admins see the whole workspace."""
        return self.is_admin or (self.user_id is None and self.session is None)


if TYPE_CHECKING:
    ToolContext: TypeAlias = Context[SkillsContext, Any]
else:
    # At run time the bare class: the SDK finds the context parameter by ``issubclass(.., Context)``,
    # and subscripting the pydantic generic would build a whole model class at every start.
    ToolContext = Context


def caller_from_meta(meta: Mapping[str, Any] | None) -> Caller:
    """Read the caller keys from a request's ``_meta``; reject values of the wrong type."""
    if meta and USER_ID_KEY not in meta and SESSION_KEY in meta:
        session = meta[SESSION_KEY]
        if not isinstance(session, str) or not _SESSION.fullmatch(session):
            raise SkillError(f"_meta {SESSION_KEY} must be kind:name (letters, digits, _ . -)")
        return Caller(session=session, is_admin=meta.get(IS_ADMIN_KEY) is True)
    if not meta or USER_ID_KEY not in meta:
        return Caller()
    user_id = meta[USER_ID_KEY]
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        raise SkillError(f"_meta {USER_ID_KEY} must be an integer")
    return Caller(user_id=user_id, is_admin=meta.get(IS_ADMIN_KEY) is True)


def skills_context(ctx: ToolContext) -> SkillsContext:
    return ctx.request_context.lifespan_context


def stores_of(ctx: ToolContext) -> Stores:
    """The server's memory store and knowledge index (opened on first use)."""
    stores = skills_context(ctx).stores
    if stores is None:
        raise SkillError("this server has no memory configured")
    return stores


def caller_of(ctx: ToolContext) -> Caller:
    meta: Mapping[str, Any] | None = ctx.request_context.meta
    return caller_from_meta(meta)


async def caller_root(ctx: ToolContext) -> Path:
    """The folder this caller may touch: the workspace, or ``WORKSPACE/users/<id>/`` for
    non-admins, ``WORKSPACE/sessions/<kind>/<name>/`` for a session caller."""
    workspace = skills_context(ctx).workspace
    caller = caller_of(ctx)
    if caller.unrestricted:
        root = workspace
    elif caller.session is not None:
        root = workspace.joinpath("sessions", *caller.session.split(":", 1))
    else:
        root = workspace / "users" / str(caller.user_id)
    await anyio.Path(root).mkdir(parents=True, exist_ok=True)
    return root
