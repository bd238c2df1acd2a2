"""Dataclasses that cross the package boundary (ORM rows never do)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
Access = Literal["allowed", "denied"]
UpdateStatus = Literal["received", "processing", "answered", "failed", "ignored"]


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    display_name: str | None
    username: str | None
    role: str
    access: Access | None
    access_by: int | None
    access_at: datetime | None
    created_at: datetime
    last_seen_at: datetime | None
    # Tokens a UTC day an admin set with /limit: None follows OMNI_USAGE_DAILY_TOKENS, 0 is none.
    daily_token_limit: int | None = None


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append to a session."""

    role: Role
    content: str | None
    tokens: int = 0
    user_id: int | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    tool_name: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    telegram_update_id: int | None = None
    telegram_message_id: int | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    session_id: int
    role: Role
    content: str | None
    tokens: int
    created_at: datetime | None = None  # not read for the prompt window (it costs a parse per row)
    user_id: int | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    tool_name: str | None = None
    telegram_update_id: int | None = None
    telegram_message_id: int | None = None

    def to_llm(self) -> dict[str, Any]:
        """The message in OpenAI chat format (what litellm takes)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        if self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
            if self.tool_name:
                out["name"] = self.tool_name
        return out


@dataclass(frozen=True, slots=True)
class Asked:
    """A stored question and the prompt window read after it (``add_question``)."""

    earlier: StoredMessage | None  # stored before for the same Telegram update: a replay
    window: list[StoredMessage]


@dataclass(frozen=True, slots=True)
class SessionRef:
    """Where a chat's messages currently go."""

    chat_id: int
    session_id: int
    key: str


@dataclass(frozen=True, slots=True)
class PendingUpdate:
    update_id: int
    chat_id: int | None
    user_id: int | None
    payload: dict[str, Any] | None
    attempts: int


@dataclass(frozen=True, slots=True)
class UsageRecord:
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: float = 0.0
    latency_ms: float = 0.0
    user_id: int | None = None
    session_id: int | None = None
    created_at: datetime | None = None  # None: now (the database's clock)


@dataclass(frozen=True, slots=True)
class UsageTotals:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class UserUsage:
    """One user's LLM use over a period, with their name when the users table knows them."""

    user_id: int
    display_name: str | None
    username: str | None
    totals: UsageTotals


@dataclass(frozen=True, slots=True)
class DailyUse:
    """What the daily token limit of one user is decided on: their own limit (None: they have
    none of their own, so the default applies; 0: no limit) and the tokens used since a moment."""

    own_limit: int | None
    used: int


@dataclass(frozen=True, slots=True)
class EpisodeView:
    """One episode of someone's memory, as recall and /memory see it."""

    id: int
    owner: str
    speaker: str  # "user" | "assistant" | a person's name (bench, groups)
    text: str
    created_at: datetime  # aware, UTC
    q: float  # learned utility in [0, 1], nudged by feedback
    recall_count: int
    session_id: int | None
    meta: dict[str, Any]  # e.g. {"turn_id": "D1:3"} for the bench, Telegram message ids


@dataclass(frozen=True, slots=True)
class NewEpisode:
    """An episode to store. ``context`` is what the full-text index sees beside the text (the
    neighbouring turns); None lets ``Episodes.add_many`` take it from the neighbouring items."""

    text: str
    speaker: str = "user"
    session_id: int | None = None
    created_at: datetime | None = None  # None: now
    meta: dict[str, Any] | None = None
    context: str | None = None


@dataclass(frozen=True, slots=True)
class Exchange:
    """A question and its answer, stored as episodes of ``owner`` with the answer's message
    (``Conversations.add_answer``), and the episodes recalled into that answer's prompt."""

    owner: str
    question: NewEpisode
    answer: NewEpisode
    recalled_ids: tuple[int, ...] = ()
