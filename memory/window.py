"""The prompt window: which of a session's messages go into the next LLM call.

A session's window is cut from its *tail*: the newest ``ROWS`` messages, of which the latest
summary (if any; compaction) and the messages after the ones it covers count. The window is
that summary, then the newest of those messages while their tokens and the summary's fit the
budget (the newest message always comes back), starting at a user message so a tool result
never loses the call it answers. :meth:`Tail.cut` is the one owner of this rule; the database
path and the in-memory path both go through it.

:class:`Tails` keeps a tail per session in memory, appended to as messages are stored, so a
turn no longer reads and maps hundreds of rows. The database stays the source of truth: a tail
is only used when the session's newest stored message is the one the tail ends with (checked
in the transaction that reads the window), and is read again from the database otherwise
(another process wrote, /forget deleted, a restart). A tail holds at most ``ROWS`` messages,
and drops the oldest ones no budget it was asked for could reach again; ``Tails`` keeps the
most recently used ``MAX_SESSIONS`` tails, none idle for longer than ``IDLE_S``.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Iterable

from memory.types import Role, StoredMessage

ROWS = 400  # a tail's messages: a session months long costs a turn no more than a new one
MAX_SESSIONS = 256  # tails kept in memory (most recently used)
IDLE_S = 3_600.0  # a tail unused this long is dropped (read again from the database)
SUMMARY_ROLE: Role = "system"  # only summaries are stored with it (memory.conversations)


class Tail:
    """A session's newest messages, oldest first, from which its window is cut.

    Holds no message the summary covers (they never reach the window), keeps ``ROWS`` at most
    (as the database read does), and forgets the oldest messages that even the largest budget
    asked for so far (``reach``) leaves out; a larger budget then needs a fresh read."""

    __slots__ = (
        "_rows",
        "_history",
        "_history_tokens",
        "_summary",
        "last_id",
        "reach",
        "_shortened",
        "used_at",
    )

    def __init__(self, newest_first: Iterable[StoredMessage], reach: int) -> None:
        rows = list(newest_first)
        self.last_id = rows[0].id if rows else None  # the session's newest stored message
        self._rows: deque[StoredMessage] = deque(maxlen=ROWS)
        self._summary: StoredMessage | None = None
        self._history = 0  # messages in the tail that are not summaries, and their tokens
        self._history_tokens = 0
        self.reach = reach
        self._shortened = False
        self.used_at = time.monotonic()
        for row in reversed(rows[:ROWS]):
            self.add(row)

    def add(self, message: StoredMessage) -> None:
        """Append a newly stored message of the session (a summary drops what it covers)."""
        if len(self._rows) == ROWS:  # the oldest falls out, as from the database's newest ROWS
            self._forget(self._rows.popleft())
        self._rows.append(message)
        self.last_id = message.id
        if message.role == SUMMARY_ROLE:
            self._summary = message
            covered = int(message.tool_call_id or 0)
            while self._rows and self._rows[0].id <= covered:
                self._forget(self._rows.popleft())
        else:
            self._history += 1
            self._history_tokens += message.tokens
            self._shorten()

    def fits(self, budget: int) -> bool:
        """Whether :meth:`cut` can answer ``budget`` (a shortened tail cannot grow back)."""
        return budget <= self.reach or not self._shortened

    def cut(self, budget: int) -> list[StoredMessage]:
        """The window for ``budget`` tokens: the summary, then the history that fits after it."""
        self.used_at = time.monotonic()
        if budget > self.reach:
            assert not self._shortened, "a shortened tail cannot answer a larger budget"
            self.reach = budget
        summary = self._summary
        room = budget - (summary.tokens if summary is not None else 0)
        history: list[StoredMessage] = []
        used = 0
        for message in reversed(self._rows):
            if message.role == SUMMARY_ROLE:
                continue
            used += message.tokens
            if history and used > room:
                break
            history.append(message)
        history.reverse()
        return ([summary] if summary is not None else []) + _from_user_start(history)

    def unsummarised(self) -> tuple[StoredMessage | None, list[StoredMessage]]:
        """The latest summary and the messages after those it covers (from a user message),
        oldest first: what compaction may summarise next."""
        return self._summary, _from_user_start([m for m in self._rows if m.role != SUMMARY_ROLE])

    def _forget(self, message: StoredMessage) -> None:
        if message is self._summary:
            self._summary = None  # out of the newest ROWS: the database read would miss it too
        elif message.role != SUMMARY_ROLE:
            self._history -= 1
            self._history_tokens -= message.tokens

    def _shorten(self) -> None:
        # The oldest message's running total is the history's total: past ``reach`` it is left
        # out of every window asked for so far, and only grows (the newest message, always in
        # the window, stays). Stop at a summary row: the messages behind it keep their place
        # among the newest ROWS.
        rows = self._rows
        while self._history > 1 and rows[0].role != SUMMARY_ROLE and self._history_tokens > self.reach:
            self._forget(rows.popleft())
            self._shortened = True


class Tails:
    """A tail per session, for the sessions used most recently (see the module)."""

    def __init__(self, max_sessions: int = MAX_SESSIONS, idle_s: float = IDLE_S) -> None:
        self._tails: OrderedDict[int, Tail] = OrderedDict()
        self._max = max_sessions
        self._idle_s = idle_s

    def get(self, session_id: int) -> Tail | None:
        tail = self._tails.get(session_id)
        if tail is not None:
            self._tails.move_to_end(session_id)
        return tail

    def put(self, session_id: int, tail: Tail) -> None:
        self._tails[session_id] = tail
        self._tails.move_to_end(session_id)
        stale = time.monotonic() - self._idle_s
        while self._tails:
            oldest = next(iter(self._tails.values()))
            if len(self._tails) <= self._max and oldest.used_at >= stale:
                break
            self._tails.popitem(last=False)

    def extend(self, session_id: int, previous_id: int | None, messages: Iterable[StoredMessage]) -> None:
        """Messages just stored after ``previous_id`` (the session's newest before them): the
        tail follows if it ended there, else it is dropped (someone else wrote in between)."""
        tail = self._tails.get(session_id)
        if tail is None:
            return
        if tail.last_id != previous_id:
            self.drop(session_id)
            return
        for message in messages:
            tail.add(message)

    def drop(self, session_id: int) -> None:
        self._tails.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._tails)


def _from_user_start(messages: list[StoredMessage]) -> list[StoredMessage]:
    """The window's history from its first user message."""
    for i, msg in enumerate(messages):
        if msg.role == "user":
            return messages[i:]
    # No user message fits: keep the newest message alone rather than nothing (unless it is a
    # dangling tool result, which a provider would reject).
    return [m for m in messages[-1:] if m.role != "tool"]
