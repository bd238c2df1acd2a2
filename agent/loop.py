"""Agent.reply(turn): store the question, ask the model (calling tools it asks for), store the answer.

The user's message is stored before the model is called, so a failure or a /stop never loses
it. Each tool round (the assistant's tool calls with all their results) is stored in one
transaction after the tools ran, and the answer after that: whatever interrupts a turn, the
stored session is one the provider accepts, and the next turn simply continues it. A Telegram
update (``turn.update_id``) is stored once and answered once, even when it is replayed.

Each per-turn rule has one owner elsewhere: the window's budget and its start at a user message
and the tokens a message takes (``memory.conversations``), a tool's deadline and output cap (the
``ToolProvider``), the summary that replaces a long session's oldest part (``agent.compaction``,
in the background after the answer).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from types import TracebackType
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from agent.compaction import Compactor
from agent.consolidation import Consolidator
from agent.context import build_messages
from agent.errors import AgentError
from agent.limits import DailyLimit
from agent.llm import Completion, LLMClient, Message, TextCallback
from agent.prompts import group_message
from agent.stream_pace import StreamPace
from agent.turn_prompt import ToolSizes, in_group, owner_of, turn_system_prompt, with_images
from agent.types import Progress, ProgressCallback, Reply, ServerStatus, ToolCall, Turn, Usage
from memory.conversations import estimate_tokens, message_tokens
from memory.store import Store
from memory.types import Asked, Exchange, NewEpisode, NewMessage, StoredMessage, UsageRecord

log = logging.getLogger(__name__)

MODEL_KEY = "agent.model"  # store.kv: the model an admin chose with /model

EMPTY_ANSWER = "I don't have an answer to that. Could you rephrase it?"
NO_TOOLS_ANSWER = "I would need a tool for that, but I have no tools available right now."
REPEAT_LIMIT = 3
LOOP_ANSWER = (
    "I stopped because I was calling {tool} again and again with the same arguments, "
    "which was getting nowhere. Could you tell me more about what you need?"
)
FINAL_NOTE = (
    "(Note from the system: the limit of {rounds} tool rounds is reached. Do not call tools; "
    "answer now with what you have found, and say what is left undone.)"
)
STEP_LIMIT_ANSWER = (
    "I stopped after {rounds} rounds of tool calls without finishing. "
    "Tell me to continue, or narrow the request down."
)


class ToolProvider(Protocol):
    """Tools the model may call (the MCP toolbox); OpenAI function-calling format.

    ``call`` owns a call's rules: it returns within its own deadline, caps what it returns, and
    reports every failure as text for the model (starting with "Error"), never by raising. A
    provider that subclasses this protocol inherits the defaults below for the optional parts.
    """

    async def list_tools(self, turn: Turn) -> list[dict[str, Any]]: ...

    async def call(self, name: str, arguments: dict[str, Any], turn: Turn) -> str: ...

    def describe(self, name: str, arguments: dict[str, Any]) -> str:
        """A status line for a call in progress."""
        return f"Using {name}…"

    def status(self) -> list[ServerStatus]:
        """Each tool server's state, for /status and doctor."""
        return []

    def start_in_background(self) -> None:
        """Start what takes seconds (servers) without waiting; first use waits for it."""

    async def reload_config(self) -> list[str]:
        """Re-read the tools' configuration; what changed, for /reload."""
        return []


@dataclass(frozen=True, slots=True)
class AgentConfig:
    model: str
    history_tokens: int = 12_000
    max_tool_rounds: int = 20
    timezone: tzinfo | None = None  # None: the machine's local zone
    consolidate_every: int = 0  # exchanges between fact consolidations; 0: off
    daily_tokens: int = 0  # a user's tokens per UTC day unless an admin set theirs; 0: none


RECALL_TOKENS = 600  # at most, of recalled memories in the system prompt


@dataclass(slots=True)
class _Remembering:
    """What a turn adds to its owner's memory: recalled into the prompt, tools it used, and the
    tokens and messages its tool rounds added to the session (for compaction)."""

    owner: str
    asked_at: datetime
    recalled: tuple[int, ...] = ()
    tools: list[str] = field(default_factory=list)
    round_tokens: int = 0
    round_messages: int = 0
    question_id: int | None = None  # the stored question's message id


class Agent:
    """The conversation loop shared by the bot, `omni chat` and the gateway."""

    def __init__(
        self,
        store: Store,
        llm: LLMClient,
        config: AgentConfig,
        tools: ToolProvider | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._store = store
        self._llm = llm
        self._config = config
        self._tools = tools
        self._model = config.model
        self._clock = clock or (lambda: datetime.now(UTC))
        self._current: dict[str, int] = {}  # session key -> current session id
        self._window_start: dict[int, int] = {}  # session id -> oldest message its last window held
        # The tool list rarely changes: its size is kept rather than re-measured every turn.
        self._tool_sizes = ToolSizes()
        self._pace = StreamPace()  # whether streaming the model's answers shows anything
        self._compactor = Compactor(store, llm)
        self._consolidator = Consolidator(store, llm, config.consolidate_every)
        self.limits = DailyLimit(store.usage, config.daily_tokens, self._clock)

    @property
    def model(self) -> str:
        return self._model

    async def set_model(self, name: str) -> None:
        """Switch the model for every chat; persisted, so it survives restarts."""
        name = name.strip()
        if not name:
            raise AgentError("empty model name", user_message="Give a model name, e.g. openai/gpt-4o-mini.")
        await self._store.kv.set(MODEL_KEY, name)
        self._model = name
        log.info("model switched to %s", name)

    async def reload(self) -> list[str]:
        """Re-read what can change without a restart: the persisted model and the MCP servers'
        config (servers whose entry changed are restarted). Returns what changed, for /reload."""
        persisted = await self._store.kv.get(MODEL_KEY)
        model = persisted if isinstance(persisted, str) and persisted else self._config.model
        changes = [f"model is now {model}"] if model != self._model else []
        self._model = model
        if self._tools is not None:
            changes += await self._tools.reload_config()
        return changes

    async def sees_images(self) -> bool:
        """Whether the current model takes pictures (``Turn.images``)."""
        return await self._llm.supports_vision(self.model)

    async def transcribe(self, audio: bytes, *, filename: str, model: str) -> str:
        """The words of a voice note, by the transcription ``model`` on the agent's endpoint."""
        return await self._llm.transcribe(audio, filename=filename, model=model)

    def tool_servers(self) -> list[ServerStatus]:
        """Each MCP server's state, for /status and doctor."""
        return self._tools.status() if self._tools is not None else []

    def warm_up(self) -> None:
        """Start what takes seconds in the background: loading the model library, and starting
        the MCP servers. The first turn waits for whatever is not ready yet."""
        self._llm.warm_up()
        if self._tools is not None:
            self._tools.start_in_background()

    async def compacted(self) -> None:
        """Wait for the summaries and facts being written in the background (tests, a clean exit)."""
        await self._compactor.wait()
        await self._consolidator.wait()

    async def aclose(self) -> None:
        """Stop background work; a summary or consolidation cut short changes nothing."""
        await self._compactor.aclose()
        await self._consolidator.aclose()

    async def __aenter__(self) -> Agent:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def new_session(self, session_key: str, telegram_chat_id: int | None = None) -> None:
        ref = await self._store.conversations.new_session(session_key, telegram_chat_id=telegram_chat_id)
        closed = self._current.get(session_key)
        if closed is not None:  # never asked again: its window start need not be kept
            self._window_start.pop(closed, None)
        self._current[session_key] = ref.session_id

    async def reply(
        self, turn: Turn, progress: ProgressCallback | None = None, *, stream: bool = False
    ) -> Reply:
        """Answer ``turn``; ``progress`` hears what is going on, and with ``stream`` also the
        answer's text as it is written, while the model is slow enough for that to show
        (agent/stream_pace.py). The reply itself is the same either way."""
        # Before anything is stored or recalled: a user over the limit costs no LLM call.
        await self.limits.check(turn)
        session_id = await self._session_of(turn)
        model = self.model
        tools = await self._tools.list_tools(turn) if self._tools is not None else []
        memory = _Remembering(owner_of(turn), self._clock())
        # Before the question is stored. What the window holds is in the prompt already: the
        # session's turns from where the last window started (or, not known yet after a
        # restart, the whole session); its older turns, summarised or cut, can be recalled.
        recalled = await self._store.recall(
            memory.owner,
            turn.text,
            exclude_session_id=session_id,
            window_start=self._window_start.get(session_id),
            # A share of the history budget: what is recalled comes out of the window's room.
            token_budget=min(RECALL_TOKENS, self._config.history_tokens // 5),
            tokens=estimate_tokens,
            now=memory.asked_at,
            mark=False,  # counted in the answer's transaction (Exchange.recalled_ids)
        )
        memory.recalled = tuple(r.episode.id for r in recalled)
        zone = ZoneInfo(turn.timezone) if turn.timezone else self._config.timezone
        now = self._clock().astimezone(zone)
        system = turn_system_prompt(turn, now, bool(tools), recalled, zone)
        # What the system prompt and the tool schemas (sent with every request) leave of the budget.
        room = max(self._config.history_tokens - estimate_tokens(system) - self._tool_sizes.of(tools), 1)
        # The question is stored and the window read after it in one transaction.
        asked = await self._store_question(session_id, turn, window_tokens=room)
        if asked.earlier is not None:  # this update was stored before: a replay after a crash
            answered = await self._stored_answer(session_id, asked.earlier)
            if answered is not None:
                log.info("update %s was answered before; replaying the stored answer", turn.update_id)
                return answered
        turns = [m.id for m in asked.window if m.role != "system"]  # a summary's id is newer
        if turns:
            self._window_start[session_id] = min(turns)
            if asked.window[-1].role == "user":
                memory.question_id = asked.window[-1].id
        messages = build_messages(system, asked.window)
        if turn.images:  # this turn's pictures ride on its question, never stored
            messages[-1] = with_images(messages[-1], turn.images)
        on_text = None
        if stream and progress is not None:

            async def on_text(piece: str) -> None:
                await _notify(progress, Progress("text", piece))

        reply = await self._answer(session_id, turn, progress, on_text, model, tools, messages, memory)
        # What the next turn's window would hold: this one's, the tool rounds and the answer.
        used = sum(m.tokens for m in asked.window) + memory.round_tokens + estimate_tokens(reply.text)
        count = len(asked.window) + memory.round_messages + 1
        self._compactor.consider(
            session_id, used=used, room=room, messages=count, model=model, user_id=turn.user_id
        )
        return reply

    async def _session_of(self, turn: Turn) -> int:
        """The chat's current session; remembered, since only this process opens new ones."""
        session_id = self._current.get(turn.session_key)
        if session_id is None:
            ref = await self._store.conversations.current(
                turn.session_key, telegram_chat_id=turn.telegram_chat_id, owner_id=turn.user_id
            )
            session_id = self._current[turn.session_key] = ref.session_id
        return session_id

    async def _store_question(self, session_id: int, turn: Turn, *, window_tokens: int) -> Asked:
        return await self._store.conversations.add_question(
            session_id,
            NewMessage(
                role="user",
                # In a group the window holds several people's messages: each names its sender.
                content=group_message(turn.user_name, turn.text) if in_group(turn) else turn.text,
                user_id=turn.user_id,
                telegram_update_id=turn.update_id,
                telegram_message_id=turn.message_id,
            ),
            window_tokens=window_tokens,
        )

    async def _stored_answer(self, session_id: int, question: StoredMessage) -> Reply | None:
        for message in await self._store.conversations.after(session_id, question.id):
            if message.role == "user":
                break
            if message.role == "assistant" and not message.tool_calls:
                return Reply(text=message.content or "", message_id=message.id, replayed=True)
        return None

    async def _answer(
        self,
        session_id: int,
        turn: Turn,
        progress: ProgressCallback | None,
        on_text: TextCallback | None,
        model: str,
        tools: list[Message],
        messages: list[Message],
        memory: _Remembering,
    ) -> Reply:
        total = Usage()
        seen: Counter[str] = Counter()
        for _ in range(self._config.max_tool_rounds):
            completion = await self._complete(messages, turn, session_id, model, tools, progress, on_text)
            total += completion.usage
            if not completion.tool_calls:
                return await self._finish(
                    session_id, completion.text or EMPTY_ANSWER, total, completion, turn, memory
                )
            if not tools:
                log.warning(
                    "model asked for tools %s but none are available", [c.name for c in completion.tool_calls]
                )
                return await self._finish(
                    session_id, completion.text or NO_TOOLS_ANSWER, total, completion, turn, memory
                )
            looping = _repeated(completion.tool_calls, seen)
            if looping is not None:
                log.warning(
                    "stopping a tool loop: %s called %d times with the same arguments", looping, REPEAT_LIMIT
                )
                return await self._finish(
                    session_id, LOOP_ANSWER.format(tool=looping), total, completion, turn, memory
                )
            # Independent calls of one step run side by side; results keep the calls' order.
            results = await asyncio.gather(
                *(self._run_tool(c, turn, progress) for c in completion.tool_calls)
            )
            memory.round_tokens += await self._store_round(session_id, completion, results)
            memory.round_messages += 1 + len(results)
            memory.tools += [c.name for c in completion.tool_calls if c.name not in memory.tools]
            messages += [completion.message, *results]
        return await self._final_without_tools(
            session_id, messages, turn, model, total, progress, on_text, memory
        )

    async def _complete(
        self,
        messages: list[Message],
        turn: Turn,
        session_id: int,
        model: str,
        tools: list[Message],
        progress: ProgressCallback | None,
        on_text: TextCallback | None,
    ) -> Completion:
        await _notify(progress, Progress("thinking", "Thinking…"))
        stream = on_text if self._pace.worth_streaming else None
        completion = await self._llm.complete(messages, model=model, tools=tools or None, on_text=stream)
        self._pace.observed(completion.usage.latency_ms / 1000)
        if completion.tool_calls:
            # Recorded at once: the turn may yet be cancelled while its tools run. A final
            # answer's usage is stored with the answer, in the same transaction (_finish).
            await self._store.usage.record(self._usage(completion, turn, session_id))
        return completion

    async def _final_without_tools(
        self,
        session_id: int,
        messages: list[Message],
        turn: Turn,
        model: str,
        total: Usage,
        progress: ProgressCallback | None,
        on_text: TextCallback | None,
        memory: _Remembering,
    ) -> Reply:
        """Out of tool rounds: ask once more, with no tools on offer, for the best answer so far."""
        rounds = self._config.max_tool_rounds
        note = {"role": "user", "content": FINAL_NOTE.format(rounds=rounds)}  # not stored
        completion = await self._complete([*messages, note], turn, session_id, model, [], progress, on_text)
        total += completion.usage
        text = completion.text if completion.text and not completion.tool_calls else None
        return await self._finish(
            session_id, text or STEP_LIMIT_ANSWER.format(rounds=rounds), total, completion, turn, memory
        )

    def _usage(self, completion: Completion, turn: Turn, session_id: int) -> UsageRecord:
        return completion.usage_record(user_id=turn.user_id, session_id=session_id)

    async def _run_tool(self, call: ToolCall, turn: Turn, progress: ProgressCallback | None) -> Message:
        assert self._tools is not None  # only called when tools were offered
        label = self._tools.describe(call.name, call.arguments)
        await _notify(progress, Progress("tool_start", label, tool=call.name))
        # The provider keeps the call within its deadline and its output within its cap.
        result = await self._tools.call(call.name, call.arguments, turn)
        failed = result[:6].lower().startswith("error")
        await _notify(progress, Progress("tool_end", f"{'✗' if failed else '✓'} {call.name}", tool=call.name))
        return {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": result}

    async def _store_round(self, session_id: int, completion: Completion, results: Sequence[Message]) -> int:
        """Store a tool round in one transaction; the tokens it takes in the window."""
        usage = completion.usage
        rows = [
            NewMessage(
                role="assistant",
                content=completion.message.get("content"),
                tool_calls=completion.message.get("tool_calls"),
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
            )
        ]
        for result in results:
            rows.append(
                NewMessage(
                    role="tool",
                    content=result["content"],
                    tool_call_id=result["tool_call_id"],
                    tool_name=result["name"],
                )
            )
        rows = [replace(row, tokens=message_tokens(row)) for row in rows]
        await self._store.conversations.append(session_id, *rows)
        return sum(row.tokens for row in rows)

    async def _finish(
        self,
        session_id: int,
        text: str,
        total: Usage,
        completion: Completion | None,
        turn: Turn,
        memory: _Remembering,
    ) -> Reply:
        """Store the answer, and the exchange as episodes of the turn's owner, in one transaction."""
        unrecorded = completion is not None and not completion.tool_calls
        group = memory.owner.startswith("chat:")
        asked = {
            "telegram_message_id": turn.message_id,
            "update_id": turn.update_id,
            "message_id": memory.question_id,
        }
        exchange = Exchange(
            owner=memory.owner,
            question=NewEpisode(
                turn.text,
                speaker=(turn.user_name or "user") if group else "user",
                session_id=session_id,
                created_at=memory.asked_at,
                meta={k: v for k, v in asked.items() if v is not None},
            ),
            answer=NewEpisode(
                text,
                speaker="assistant",
                session_id=session_id,
                created_at=self._clock(),
                meta={"tools": memory.tools} if memory.tools else None,
            ),
            recalled_ids=memory.recalled,
        )
        message_id = await self._store.conversations.add_answer(
            session_id,
            NewMessage(
                role="assistant",
                content=text,
                prompt_tokens=completion.usage.prompt_tokens if completion else None,
                completion_tokens=completion.usage.completion_tokens if completion else None,
            ),
            usage=self._usage(completion, turn, session_id) if completion and unrecorded else None,
            exchange=exchange,
        )
        self._consolidator.exchanged(memory.owner, model=self.model, user_id=turn.user_id)
        return Reply(text=text, message_id=message_id, usage=total)


def _repeated(calls: Sequence[ToolCall], seen: Counter[str]) -> str | None:
    """The name of a call asked for in :data:`REPEAT_LIMIT` steps with the same arguments.

    Counted once per step: identical calls side by side in one step are a fan-out, not a loop.
    """
    keys = {f"{c.name}\0{json.dumps(c.arguments, sort_keys=True, default=str)}": c.name for c in calls}
    seen.update(keys.keys())
    return next((name for key, name in keys.items() if seen[key] >= REPEAT_LIMIT), None)


async def _notify(progress: ProgressCallback | None, event: Progress) -> None:
    if progress is None:
        return
    try:
        await progress(event)
    except Exception:  # a status line failing to update must not cost the user the answer
        log.warning("progress callback failed", exc_info=True)
