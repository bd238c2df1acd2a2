"""A tool provider that adds tools of its own to another's (the MCP toolbox): the bot's
``send_file``, the scheduling tools. Everything else is passed through to the inner provider."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from agent.loop import ToolProvider
from agent.types import ServerStatus, Turn

Tool = dict[str, Any]  # an OpenAI-format tool definition


def tool_name(tool: Tool) -> str:
    return str(tool.get("function", {}).get("name", ""))


class ToolWrapper(ToolProvider):
    """``inner``'s tools plus the wrapper's own, named in ``names``; a subclass says which of its
    tools a turn gets (``own_tools``) and runs them (``own_call``)."""

    names: frozenset[str] = frozenset()

    def __init__(self, inner: ToolProvider | None) -> None:
        self._inner = inner
        # (inner list's id, own tools' key) -> the inner list (kept, so its id stays its own) and
        # the merged list: the same object turn after turn, as the agent measures a new list's size.
        self._listed: dict[tuple[int, Hashable], tuple[list[Tool], list[Tool]]] = {}

    async def own_tools(self, turn: Turn) -> tuple[Hashable, list[Tool]] | None:
        """This turn's own tools and a key that changes when they do; None: none on this turn."""
        return None

    async def own_call(self, name: str, arguments: dict[str, Any], turn: Turn) -> str:
        raise NotImplementedError

    def own_describe(self, name: str, arguments: dict[str, Any]) -> str:
        return f"Using {name}…"

    async def list_tools(self, turn: Turn) -> list[Tool]:
        inner = await self._inner.list_tools(turn) if self._inner is not None else []
        own = await self.own_tools(turn)
        if own is None:
            return inner
        key, tools = (id(inner), own[0]), own[1]
        listed = self._listed.get(key)
        if listed is None or listed[0] is not inner:
            if len(self._listed) >= 64:  # lists replaced since (/reload), or many zones
                self._listed.clear()
            merged = [t for t in inner if tool_name(t) not in self.names] + tools
            listed = self._listed[key] = (inner, merged)
        return listed[1]

    async def call(self, name: str, arguments: dict[str, Any], turn: Turn) -> str:
        if name in self.names:
            return await self.own_call(name, arguments, turn)
        if self._inner is None:
            return f"Error: there is no tool named {name!r}"
        return await self._inner.call(name, arguments, turn)

    def describe(self, name: str, arguments: dict[str, Any]) -> str:
        if name in self.names:
            return self.own_describe(name, arguments)
        if self._inner is None:
            return super().describe(name, arguments)
        return self._inner.describe(name, arguments)

    def status(self) -> list[ServerStatus]:
        return self._inner.status() if self._inner is not None else []

    def start_in_background(self) -> None:
        if self._inner is not None:
            self._inner.start_in_background()

    async def reload_config(self) -> list[str]:
        return await self._inner.reload_config() if self._inner is not None else []
