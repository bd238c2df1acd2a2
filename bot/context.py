"""What handlers get: OmniContext (a typed CallbackContext) and the BotDeps it carries."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from telegram.ext import Application, CallbackContext, ExtBot

from omni.settings import Settings

if TYPE_CHECKING:
    from agent import Agent
    from agent.schedule_tools import ScheduleTools
    from agent.scheduler import Scheduler
    from bot.access import AccessList
    from bot.chat import ChatRouter
    from memory.store import Store


@dataclass(slots=True)
class BotDeps:
    """Everything the handlers use, built once by ``bot.run`` and read via ``context.deps``."""

    settings: Settings
    store: Store
    agent: Agent
    access: AccessList
    chats: ChatRouter
    boot_id: str  # this process, for claiming updates in the ledger
    scheduler: Scheduler | None = None  # fires reminders, scheduled tasks and /bg jobs
    schedules: ScheduleTools | None = None  # the agent's scheduling tools (and users' zones)
    started_at: float = field(default_factory=time.monotonic)


class OmniContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """CallbackContext with typed access to the bot's dependencies."""

    @property
    def deps(self) -> BotDeps:
        deps = self.application.bot_data["deps"]
        assert isinstance(deps, BotDeps)  # set by build_application before polling starts
        return deps


OmniApplication = Application[ExtBot[None], OmniContext, dict[Any, Any], dict[Any, Any], dict[Any, Any], Any]
