"""Compaction: when a session outgrows its window, its oldest part becomes a stored summary.

After each answer the agent tells :class:`Compactor` how full the window it read was. Past
``TRIGGER`` of the room, or of ``MESSAGES``, a background task (one per session at a time)
reads what came after the session's last summary, keeps the newest turns worth up to ``KEEP``
of the room and of ``MESSAGES`` (always the latest turn), and asks the model to summarise the
rest together with the previous summary.
The cut always falls just before a user message, so an assistant's tool calls and their
results stay on the same side of it. The summary is stored (``Conversations.add_summary``) and
the next turn's window starts with it.

Compacting before the window overflows, after the answer is sent, means the user never waits
for the summary and no turn loses history to the cut in between. A failed summary call is
logged and changes nothing: the window simply cuts the oldest messages, as it always did.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from agent.background import BackgroundJobs
from agent.llm import LLMClient, Message
from agent.prompts import SUMMARISE
from memory.store import Store
from memory.types import StoredMessage

log = logging.getLogger(__name__)

TRIGGER = 0.75  # of the window's room: compact once the history takes more than this
KEEP = 0.5  # of the room: the newest turns kept word for word after compacting
SUMMARY_SHARE = 0.15  # of the room a summary should take (asked for in words)
SUMMARY_LIMIT = 0.3  # of the room: a summary longer than asked for is cut to this
TRANSCRIPT_ROOM = 3  # times the room: a longer backlog (a session older than compaction)
# is summarised from its newest part
# A window's messages worth keeping word for word, however short they are: every message costs
# the provider its framing and the client a pass (litellm's per-message work dominated a turn of
# a long chat of short messages: measured in-process, a 400-message window took ~15 ms a turn
# against ~11 ms for 120); older ones are better summarised, and recalled from memory.
MESSAGES = 160
TOOL_RESULT_CHARS = 1_000  # of each tool result in the transcript: enough to keep its facts


@dataclass(frozen=True, slots=True)
class Plan:
    """What one compaction summarises; ``through`` is the last message it covers."""

    previous: StoredMessage | None
    dropped: list[StoredMessage]

    @property
    def through(self) -> int:
        return self.dropped[-1].id


def plan(
    previous: StoredMessage | None,
    messages: Sequence[StoredMessage],
    keep: int,
    keep_messages: int = int(MESSAGES * KEEP),
) -> Plan | None:
    """Split ``messages`` (oldest first, after the last summary) at a user message: the newest
    turns worth up to ``keep`` tokens and ``keep_messages`` messages stay (the latest turn
    always does), the rest is summarised. None when there is nothing before the latest turn."""
    starts = [i for i, m in enumerate(messages) if m.role == "user"]
    if not starts:
        return None
    cut = starts[-1]
    used = sum(m.tokens for m in messages[cut:])
    for start in reversed(starts[:-1]):
        cost = sum(m.tokens for m in messages[start:cut])
        if used + cost > keep or len(messages) - start > keep_messages:
            break
        cut, used = start, used + cost
    return Plan(previous, list(messages[:cut])) if cut > 0 else None


def transcript(plan: Plan, room: int) -> str:
    """The part to summarise as plain text, newest kept when it is longer than ``room`` tokens."""
    lines: list[str] = []
    used = 0
    for message in reversed(plan.dropped):
        line = _line(message)
        used += message.tokens
        if lines and used > room:
            lines.append("(older messages left out)")
            break
        lines.append(line)
    if plan.previous is not None:
        lines.append(f"Earlier summary: {plan.previous.content or ''}")
    return "\n\n".join(reversed(lines))


def _line(message: StoredMessage) -> str:
    text = message.content or ""
    if message.role == "tool":
        cut = text[:TOOL_RESULT_CHARS] + ("…" if len(text) > TOOL_RESULT_CHARS else "")
        return f"Result of {message.tool_name or 'a tool'}: {cut}"
    if message.role == "assistant" and message.tool_calls:
        calls = ", ".join(
            f"{c['function']['name']}({c['function'].get('arguments') or ''})"
            for c in message.tool_calls
            if isinstance(c, dict) and isinstance(c.get("function"), dict)
        )
        return f"Assistant: {text}\nAssistant called: {calls}" if text else f"Assistant called: {calls}"
    return f"{'User' if message.role == 'user' else 'Assistant'}: {text}"


async def compact(
    store: Store, llm: LLMClient, session_id: int, *, room: int, model: str, user_id: int | None = None
) -> int | None:
    """Summarise the session's oldest unsummarised part if there is one; the summary's id."""
    previous, messages = await store.conversations.unsummarised(session_id)
    found = plan(previous, messages, int(room * KEEP))
    if found is None:
        return None
    words = max(50, int(room * SUMMARY_SHARE * 0.75))
    request: list[Message] = [
        {"role": "system", "content": SUMMARISE.format(words=words)},
        {"role": "user", "content": transcript(found, room * TRANSCRIPT_ROOM)},
    ]
    completion = await llm.complete(request, model=model)
    text = _bounded(completion.text.strip(), int(room * SUMMARY_LIMIT))
    if not text or completion.tool_calls:
        log.warning("compaction of session %s got no summary; history left as it was", session_id)
        return None
    usage = completion.usage_record(user_id=user_id, session_id=session_id)
    summary_id = await store.conversations.add_summary(session_id, text, through=found.through, usage=usage)
    log.info("session %s: %d messages summarised (through %d)", session_id, len(found.dropped), found.through)
    return summary_id


def _bounded(text: str, tokens: int) -> str:
    """``text`` cut to about ``tokens`` (four characters a token): a model that ignores the
    length it was asked for must not leave the window no room for the conversation."""
    chars = tokens * 4
    return text if len(text) <= chars else text[:chars].rstrip() + "…"


class Compactor(BackgroundJobs):
    """Runs compactions in the background, at most one per session; the agent owns it."""

    def __init__(self, store: Store, llm: LLMClient) -> None:
        super().__init__("compaction")
        self._store = store
        self._llm = llm

    def consider(
        self, session_id: int, *, used: int, room: int, messages: int, model: str, user_id: int | None
    ) -> None:
        """Start compacting ``session_id`` if its window (``used`` of ``room`` tokens, and
        ``messages`` messages) is full. A failure leaves the history as it was."""
        full = used > room * TRIGGER or messages > MESSAGES * TRIGGER
        if full and not self.busy(session_id):
            self.start(
                session_id,
                compact(self._store, self._llm, session_id, room=room, model=model, user_id=user_id),
            )
