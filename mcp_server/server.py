"""The skills MCP server: an SDK ``MCPServer`` whose tools, prompts and resources come from skills.

``build_server(settings)`` loads every skill and returns the server; the transports in
``transports.py`` run it. Besides the SDK's tools/prompts/resources handlers it answers
``logging/setLevel`` and ``completion/complete``, advertises ``listChanged`` everywhere, and
can tell every connected client that its lists changed after a hot reload.
"""

from __future__ import annotations

import json
import logging
import weakref
import zoneinfo
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.subscriptions import PromptsListChanged, ResourcesListChanged, ToolsListChanged

from mcp_server.loader import BUILTIN_ROOT, Registry
from memory.knowledge import INDEX_FILE
from omni import __version__
from omni.settings import Settings
from skills._context import SkillsContext
from skills._stores import Stores
from skills.web.search import config_of as search_config_of

log = logging.getLogger(__name__)

STATUS_URI = "omni://status"
SKILL_URI = "skill://{name}"
_ALL_CHANGED = NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)
_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
_MAX_COMPLETIONS = 100


class Clients:
    """The connected (handshake-era) clients, so a reload can notify each of them.

    Middleware records each connection when it sends ``notifications/initialized``. The SDK has
    no public per-connection handle yet, so this reads the session's connection; the WeakSet
    forgets a connection once the SDK drops it.
    """

    def __init__(self) -> None:
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "notifications/initialized":
            self._connections.add(ctx.session._connection)  # see the class docstring
        return await call_next(ctx)

    def __len__(self) -> int:
        return len(self._connections)

    async def lists_changed(self, message: str | None = None, level: str = "info") -> None:
        """Send tools/resources/prompts list_changed (and an optional log line) to every client."""
        for connection in list(self._connections):
            try:
                await connection.send_tool_list_changed()
                await connection.send_resource_list_changed()
                await connection.send_prompt_list_changed()
                if message is not None:
                    await connection.log(level, message, "omni.skills")
            except Exception:  # a client that went away must not stop the others being told
                log.debug("could not notify a client; dropping it", exc_info=True)
                self._connections.discard(connection)


class SkillsServer(MCPServer[SkillsContext]):
    """MCPServer plus the skill registry; each loaded skill's SKILL.md is a ``skill://`` resource."""

    def __init__(self, settings: Settings) -> None:
        self.stores = Stores(settings.database_url, settings.data_dir / INDEX_FILE)
        self.context = SkillsContext(
            workspace=settings.workspace,
            shell_enabled=settings.shell_enabled,
            web_allow_private=settings.web_allow_private,
            web_search=search_config_of(settings),
            max_write_bytes=settings.files_max_write_bytes,
            quota_bytes=settings.files_quota_bytes,
            tool_timeout=settings.tool_timeout,
            memory_user=settings.memory_user,
            stores=self.stores,
        )
        self.clients = Clients()
        self.bus = InMemorySubscriptionBus()
        self.client_log_level = "info"
        super().__init__(
            name="omni-skills",
            title="omni skills",
            version=__version__,
            instructions="Tools from omni's skills. Read skill://<name> for a skill's instructions.",
            lifespan=self._lifespan,
            subscriptions=self.bus,
            middleware=[self.clients],
            log_level=settings.log_level,
        )
        self.registry = Registry(self, self.context, (BUILTIN_ROOT, *settings.skills_dirs))
        self._install_handlers()
        self.resource(
            STATUS_URI, name="status", description="Loaded and failed skills", mime_type="application/json"
        )(self._status_json)
        self.resource(SKILL_URI, name="skill", description="A skill's SKILL.md", mime_type="text/markdown")(
            self._skill_md
        )

    @asynccontextmanager
    async def _lifespan(self, _: MCPServer[SkillsContext]) -> AsyncIterator[SkillsContext]:
        await anyio.Path(self.context.workspace).mkdir(parents=True, exist_ok=True)
        async with self.stores:  # closes what the memory and knowledge skills opened
            yield self.context

    def _install_handlers(self) -> None:
        low = self._lowlevel_server
        original = low.create_initialization_options

        def with_list_changed(
            notification_options: NotificationOptions | None = None,
            experimental_capabilities: dict[str, dict[str, Any]] | None = None,
            extensions: dict[str, dict[str, Any]] | None = None,
        ) -> Any:
            # Every transport (the HTTP session manager too) asks the server for these options,
            # and the SDK default says listChanged=false; we do send those notifications.
            return original(notification_options or _ALL_CHANGED, experimental_capabilities, extensions)

        low.create_initialization_options = with_list_changed  # type: ignore[method-assign]
        low.add_request_handler("logging/setLevel", types.SetLevelRequestParams, self._set_level)
        low.add_request_handler("completion/complete", types.CompleteRequestParams, self._complete)

    async def _set_level(
        self, ctx: ServerRequestContext[SkillsContext, Any], params: types.SetLevelRequestParams
    ) -> types.EmptyResult:
        self.client_log_level = params.level
        log.info("client log level set to %s", params.level)
        return types.EmptyResult()

    def wants_log(self, level: str) -> bool:
        return _LEVELS.index(level) >= _LEVELS.index(self.client_log_level)

    async def _complete(
        self, ctx: ServerRequestContext[SkillsContext, Any], params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        values = self.completions(params.ref, params.argument.name, params.argument.value)
        return types.CompleteResult(
            completion=types.Completion(
                values=values[:_MAX_COMPLETIONS], total=len(values), has_more=len(values) > _MAX_COMPLETIONS
            )
        )

    def completions(self, ref: Any, argument: str, prefix: str) -> list[str]:
        """Candidate values for a resource template variable or a prompt argument."""
        if isinstance(ref, types.ResourceTemplateReference) and ref.uri == SKILL_URI and argument == "name":
            candidates = sorted(self.registry.skills)
        elif isinstance(ref, types.PromptReference) and argument == "timezone":
            candidates = sorted(zoneinfo.available_timezones())
        else:
            candidates = []
        lowered = prefix.lower()
        return [c for c in candidates if c.lower().startswith(lowered)]

    async def list_resources(self) -> list[types.Resource]:
        listed = await super().list_resources()
        return listed + [
            types.Resource(
                uri=f"skill://{skill.name}",
                name=skill.name,
                description=skill.description,
                mime_type="text/markdown",
            )
            for skill in sorted(self.registry.skills.values(), key=lambda s: s.name)
        ]

    async def _status_json(self) -> str:
        return json.dumps(self.registry.status(), indent=2)

    async def _skill_md(self, name: str) -> str:
        skill = self.registry.skills.get(name)
        if skill is None:
            raise ResourceNotFoundError(f"no skill named {name!r}")
        return skill.instructions

    async def notify_changed(self, message: str | None = None, level: str = "info") -> None:
        """Tell every client its lists changed: handshake-era sessions and subscription streams."""
        await self.clients.lists_changed(message if message and self.wants_log(level) else None, level)
        for event in (ToolsListChanged(), ResourcesListChanged(), PromptsListChanged()):
            await self.bus.publish(event)


def build_server(settings: Settings) -> SkillsServer:
    """A ready-to-run server with every skill loaded (broken ones recorded, not fatal)."""
    server = SkillsServer(settings)
    server.registry.load_all()
    return server
