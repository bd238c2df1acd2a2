"""The chat messages for one LLM call: the system prompt, then the session's window.

The window comes from ``memory.conversations`` already cut to the budget and starting at a
user message (that module owns both rules); this module only lays it out. A window that
starts with a summary (compaction) has it folded into the system message: every provider
accepts one system message first, not all accept more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.prompts import summary_section
from memory.types import StoredMessage

Message = dict[str, Any]


def build_messages(system: str, window: Sequence[StoredMessage]) -> list[Message]:
    """``system`` (with the summary the window may start with), then the window's history."""
    history = list(window)
    if history and history[0].role == "system":
        system = f"{system}\n\n{summary_section(history.pop(0).content or '')}"
    return [{"role": "system", "content": system}, *(m.to_llm() for m in history)]
