"""What a turn puts before the model besides its history: whose memory it is, the system
prompt with what was recalled, the question's pictures, and the tool schemas' size."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime, tzinfo

from agent.errors import AgentError
from agent.llm import Message
from agent.prompts import memory_section, system_prompt
from agent.types import Image, Turn
from memory.conversations import estimate_tokens
from memory.episodes import owner_for
from memory.recall import Recalled


def in_group(turn: Turn) -> bool:
    """Whether a Telegram turn comes from a member of a group (a private chat's id is its user's id)."""
    return turn.user_id is not None and turn.telegram_chat_id not in (None, turn.user_id)


def owner_of(turn: Turn) -> str:
    """Whose memory a turn reads and grows. A Telegram chat is private when its id is the
    sender's id (Telegram gives a private chat its user's id; groups have negative ids)."""
    private = turn.telegram_chat_id is not None and turn.telegram_chat_id == turn.user_id
    return owner_for(turn.user_id, turn.telegram_chat_id, private, turn.session_key)


def turn_system_prompt(
    turn: Turn, now: datetime, tools: bool, recalled: Sequence[Recalled], timezone: tzinfo | None
) -> str:
    """The system prompt: who omni is, the time, the user, and what was recalled for the turn."""
    group = in_group(turn)
    system = system_prompt(now, user_name=turn.user_name, tools=tools, group=group)
    remembered = memory_section([r.episode for r in recalled], timezone, group=group)
    return system if remembered is None else f"{system}\n\n{remembered}"


def with_images(question: Message, images: Sequence[Image]) -> Message:
    """The question as OpenAI-style content parts: its text, then each picture as a data URL."""
    if question.get("role") != "user":
        raise AgentError("a turn's pictures need its question last in the prompt")
    parts: list[Message] = [{"type": "text", "text": question.get("content") or ""}]
    for image in images:
        data = base64.b64encode(image.data).decode("ascii")
        parts.append({"type": "image_url", "image_url": {"url": f"data:{image.mime_type};base64,{data}"}})
    return {**question, "content": parts}


class ToolSizes:
    """The tokens the tool schemas take in every request. The tool list rarely changes: its
    size is kept while the list is the same object rather than re-measured every turn."""

    def __init__(self) -> None:
        self._seen: tuple[list[Message], int] = ([], 0)

    def of(self, tools: list[Message]) -> int:
        seen, tokens = self._seen
        if tools is not seen:
            tokens = estimate_tokens(json.dumps(tools)) if tools else 0
            self._seen = (tools, tokens)
        return tokens
