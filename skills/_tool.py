"""Decorators a skill's ``tools.py`` uses to describe its tools and prompts truthfully.

Every public ``async def`` defined in a skill's ``tools.py`` is a tool. ``@tool(...)`` sets its
MCP annotations; without it the spec's cautious defaults apply (may write, may destroy, may
reach the outside world). ``@tool(enabled=...)`` registers the tool only when that function of
the server's SkillsContext says so (a tool that needs a setting is then absent, not broken).
``@prompt()`` marks a function as a prompt instead of a tool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

F = TypeVar("F", bound=Callable[..., Any])

TOOL_ATTR = "__omni_tool__"
ENABLED_ATTR = "__omni_enabled__"
PROMPT_ATTR = "__omni_prompt__"


class SkillError(ToolError):
    """An expected tool failure; its message (one line) is what the model reads."""


def tool(
    *,
    read_only: bool,
    destructive: bool = False,
    idempotent: bool = False,
    open_world: bool = False,
    title: str | None = None,
    enabled: Callable[[Any], bool] | None = None,
) -> Callable[[F], F]:
    """Mark a function as a tool with honest annotations; ``enabled(context)`` gates it."""
    annotations = ToolAnnotations(
        title=title,
        read_only_hint=read_only,
        destructive_hint=False if read_only else destructive,
        idempotent_hint=idempotent,
        open_world_hint=open_world,
    )

    def mark(fn: F) -> F:
        setattr(fn, TOOL_ATTR, annotations)
        if enabled is not None:
            setattr(fn, ENABLED_ATTR, enabled)
        return fn

    return mark


def prompt(*, title: str | None = None) -> Callable[[F], F]:
    """Mark a function as a prompt template (it returns the prompt text)."""

    def mark(fn: F) -> F:
        setattr(fn, PROMPT_ATTR, title or "")
        return fn

    return mark
