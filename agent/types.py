"""The dataclasses other packages see at the agent's seam (bot, `omni chat`, gateway)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Image:
    """A picture sent with a turn. It reaches the model with this turn only: the stored
    conversation keeps the turn's text."""

    data: bytes
    mime_type: str = "image/jpeg"


@dataclass(frozen=True, slots=True)
class Turn:
    """One user message for the agent, from any frontend.

    ``session_key`` names the conversation: ``tg:<chat id>`` for Telegram, ``cli:<name>`` for
    `omni chat`, ``gw:<id>`` for the gateway. ``update_id`` makes a Telegram turn idempotent:
    the same update is stored once and answered once, even when replayed after a crash.
    """

    session_key: str
    text: str
    user_id: int | None = None
    user_name: str | None = None
    is_admin: bool = False
    telegram_chat_id: int | None = None
    update_id: int | None = None
    message_id: int | None = None
    images: tuple[Image, ...] = ()  # for a model that supports vision (Agent.sees_images)
    timezone: str | None = None  # the user's IANA zone (/tz), for the prompt's time; else the agent's


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_ms: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost + other.cost,
            self.latency_ms + other.latency_ms,
        )


@dataclass(frozen=True, slots=True)
class Reply:
    """The agent's answer. ``message_id`` is the stored assistant message (for sent ids)."""

    text: str
    message_id: int | None
    usage: Usage = field(default_factory=Usage)
    replayed: bool = False  # the answer was already stored (update replayed after a crash)


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Progress:
    """What the agent is doing now, for a live status line ("📄 reading notes.md…"); with a
    streamed reply, also each piece of the answer as the model writes it (``text``). Every
    model call starts with ``thinking``: text streamed before it belonged to a tool round."""

    kind: Literal["thinking", "tool_start", "tool_end", "text"]
    text: str
    tool: str | None = None


ProgressCallback = Callable[[Progress], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """One tool server's state, for /status and doctor."""

    name: str
    state: str
    tools: int
    error: str | None
