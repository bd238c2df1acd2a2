"""Fit a conversation into the model's prompt: system message first, newest history within budget."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memory.types import StoredMessage

Message = dict[str, Any]


def message_tokens(message: StoredMessage) -> int:
    """The stored count, or an estimate for rows stored without one."""
    if message.tokens > 0:
        return message.tokens
    return len(message.content or "") // 4 + len(str(message.tool_calls or "")) // 4 + 4


def fit_window(window: Sequence[StoredMessage], budget: int) -> list[StoredMessage]:
    """The newest messages whose tokens fit ``budget``, starting at a user message.

    The newest message is always kept (the model must see what it answers), and the window
    never opens with a tool result or an assistant tool call cut off from its question.
    """
    picked: list[StoredMessage] = []
    used = 0
    for message in reversed(window):
        cost = message_tokens(message)
        if picked and used + cost > budget:
            break
        picked.append(message)
        used += cost
    picked.reverse()
    for i, message in enumerate(picked):
        if message.role == "user":
            return picked[i:]
    return [m for m in picked[-1:] if m.role != "tool"]


def build_messages(
    system: str, window: Sequence[StoredMessage], *, budget: int, system_tokens: int = 0
) -> list[Message]:
    """The chat messages for the model: ``system``, then the history that fits what it leaves."""
    history = fit_window(window, max(budget - system_tokens, 0))
    return [{"role": "system", "content": system}, *(m.to_llm() for m in history)]
