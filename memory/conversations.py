"""Chats, their sessions, and the messages in them.

A chat (``tg:<id>``, ``cli:<name>``, ...) has one current session; ``new_session`` opens a
fresh one and keeps the old. ``window`` returns the newest messages that fit a token budget,
starting at a user message so tool results never lose the call they answer (the rule is
``memory.window``'s); this module owns how many tokens a message takes (``estimate_tokens``).
The window read on every turn (``add_question``) comes from a tail of the session kept in
memory and appended to by every write here, checked against the database each time.

A session's oldest part may be replaced in the window by a summary (compaction): a message
with role ``system`` (the system prompt itself is never stored, so the role marks a summary)
whose ``tool_call_id`` holds the id of the last message it covers. Existing columns carry it,
so no migration: ``tool_call_id`` is otherwise only set on tool results, and a summary "answers
for" the messages up to that id. The window starts with the latest summary, followed by the
messages after the ones it covers; the covered messages stay stored (episodes, /forget).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CursorResult,
    bindparam,
    func,
    insert,
    select,
    update,
)

from memory.connection import Conn
from memory.db import Database
from memory.episodes import insert_episodes, with_context
from memory.models import Chat, Message, Session, Usage, User
from memory.types import Asked, Exchange, NewMessage, SessionRef, StoredMessage, UsageRecord
from memory.usage import usage_values
from memory.utility import record_recalls
from memory.window import ROWS, SUMMARY_ROLE, Tail, Tails

_WINDOW_COLUMNS = (
    "id",
    "session_id",
    "role",
    "content",
    "tokens",
    "user_id",
    "tool_calls",
    "tool_call_id",
    "tool_name",
    "telegram_update_id",
    "telegram_message_id",
)


def _stored(row: Message) -> StoredMessage:
    return StoredMessage(
        id=row.id,
        session_id=row.session_id,
        role=row.role,  # type: ignore[arg-type]
        content=row.content,
        tokens=row.tokens,
        created_at=row.created_at,
        user_id=row.user_id,
        tool_calls=row.tool_calls,
        tool_call_id=row.tool_call_id,
        tool_name=row.tool_name,
        telegram_update_id=row.telegram_update_id,
        telegram_message_id=row.telegram_message_id,
    )


def _new_id(result: CursorResult[Any]) -> int:
    (key,) = result.inserted_primary_key or (None,)
    assert key is not None  # an INSERT without RETURNING reports the row id it made
    return int(key)


SUMMARY_NAME = "summary"  # their tool_name, so a row read by hand says what it is
MESSAGE_OVERHEAD = 4  # tokens a provider spends on a message's role and separators


def estimate_tokens(text: str) -> int:
    """The tokens ``text`` takes in a prompt: about four bytes of UTF-8 a token.

    The one estimate omni uses (window, system prompt, tool schemas, recall budget): it only
    has to be consistent, and cheap, since it runs for every message. Counting bytes rather
    than characters keeps it honest for scripts that take more tokens a character (Cyrillic,
    CJK) than English does.
    """
    return len(text.encode("utf-8")) // 4 + 1


def message_tokens(msg: NewMessage) -> int:
    """What a message to store takes in the window: its text, its tool calls, its framing."""
    calls = json.dumps(msg.tool_calls) if msg.tool_calls else ""
    return estimate_tokens((msg.content or "") + calls) + MESSAGE_OVERHEAD


def _values(session_id: int, msg: NewMessage) -> dict[str, Any]:
    return dict(
        session_id=session_id,
        user_id=msg.user_id,
        role=msg.role,
        content=msg.content,
        tool_calls=msg.tool_calls,
        tool_call_id=msg.tool_call_id,
        tool_name=msg.tool_name,
        tokens=msg.tokens or message_tokens(msg),  # counted here, once, when it is stored
        prompt_tokens=msg.prompt_tokens,
        completion_tokens=msg.completion_tokens,
        telegram_update_id=msg.telegram_update_id,
        telegram_message_id=msg.telegram_message_id,
    )


# The newest messages of a session, through the ``(session_id, id)`` index: a session months
# long costs a read no more than a new one (measured: 30,000 messages took 98 ms a turn when
# all were summed). Built once: it runs whenever a session's tail is not in memory.
_NEWEST = (
    select(*(getattr(Message, name) for name in _WINDOW_COLUMNS))
    .where(Message.session_id == bindparam("session_id"))
    .order_by(Message.id.desc())
    .limit(bindparam("limit", literal_execute=False))
)
# The session's newest message ids before ``before``: whether a tail in memory still ends
# where the database does.
_NEWEST_IDS = (
    select(Message.id)
    .where(Message.session_id == bindparam("session_id"), Message.id < bindparam("before"))
    .order_by(Message.id.desc())
    .limit(bindparam("limit", literal_execute=False))
)

# Built once, like the window's query: they run for every message.
_INSERT_MESSAGE = insert(Message)
_INSERT_MESSAGES = insert(Message).returning(Message.id, sort_by_parameter_order=True)
_INSERT_USAGE = insert(Usage)
_QUESTION_COLUMNS = (
    "session_id",
    "user_id",
    "role",
    "content",
    "tokens",
    "telegram_update_id",
    "telegram_message_id",
)


def _question_insert() -> Any:
    """Insert a user message unless one of its Telegram update is stored already (a replay)."""
    row = select(*(bindparam(name, type_=Message.__table__.c[name].type) for name in _QUESTION_COLUMNS))
    stored = select(Message.id).where(
        Message.session_id == bindparam("session_id"),
        Message.telegram_update_id == bindparam("telegram_update_id"),
    )
    return insert(Message).from_select(list(_QUESTION_COLUMNS), row.where(~stored.exists()))


_INSERT_QUESTION = _question_insert()

# A chat's first message: find or create the chat and its first session.
_FIND_CHAT = select(Chat.id, Chat.current_session_id).where(Chat.key == bindparam("key"))
_INSERT_CHAT = insert(Chat)
_INSERT_OWNED_CHAT = insert(Chat).values(
    key=bindparam("key"),
    telegram_chat_id=bindparam("telegram_chat_id"),
    # NULL unless that user is stored: the column is a foreign key.
    owner_id=select(User.id).where(User.id == bindparam("owner_id")).scalar_subquery(),
)
_INSERT_SESSION = insert(Session)
_SET_CURRENT = update(Chat).where(Chat.id == bindparam("chat_id")).values(current_session_id=bindparam("sid"))


async def _tail(conn: Conn, session_id: int, reach: int, rows: int = ROWS) -> Tail:
    """The session's tail read from the database (the newest ``rows`` messages)."""
    params = {"session_id": session_id, "limit": rows}
    return Tail((_from_window_row(row) for row in await conn.execute(_NEWEST, params)), reach)


# Above every message id: ids are 32-bit integers on PostgreSQL, which refuses a larger bound.
AFTER_LAST_ID = 2**31 - 1


def _ids_params(session_id: int, *, before: int = AFTER_LAST_ID, limit: int = 1) -> dict[str, int]:
    return {"session_id": session_id, "before": before, "limit": limit}


def _stored_row(message_id: int, values: dict[str, Any]) -> StoredMessage:
    """A message just stored (``_values``) as the window reads it back."""
    return StoredMessage(
        message_id,
        values["session_id"],
        values["role"],
        values["content"],
        values["tokens"],
        None,
        values["user_id"],
        values["tool_calls"],
        values["tool_call_id"],
        values["tool_name"],
        values["telegram_update_id"],
        values["telegram_message_id"],
    )


async def _stored_question(conn: Conn, session_id: int, update_id: int) -> StoredMessage:
    """The message stored first for a Telegram update (its replay found it there)."""
    row = (
        await conn.execute(
            select(*(getattr(Message, name) for name in _WINDOW_COLUMNS))
            .where(Message.session_id == session_id, Message.telegram_update_id == update_id)
            .order_by(Message.id)
            .limit(1)
        )
    ).one()
    return _from_window_row(row)


def _from_window_row(row: Any) -> StoredMessage:
    # Positional: this runs for every message of the window on every turn.
    mid, session_id, role, content, tokens, user_id, calls, call_id, tool, update_id, message_id = row
    return StoredMessage(
        mid, session_id, role, content, tokens, None, user_id, calls, call_id, tool, update_id, message_id
    )


class Conversations:
    """The hot paths (every turn) use Core statements on a connection: the ORM unit of work
    costs several times the SQL itself. Rarer operations use ORM sessions."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._tails = Tails()  # sessions' tails in memory, for the window read every turn

    async def current(
        self, key: str, *, telegram_chat_id: int | None = None, owner_id: int | None = None
    ) -> SessionRef:
        """The chat's current session, creating the chat and a first session if needed.

        ``owner_id`` is recorded only if that user is stored (it is a foreign key).
        """
        async with self._db.transaction() as conn:
            found = (await conn.execute(_FIND_CHAT, {"key": key})).first()
            if found is None:
                values = dict(key=key, telegram_chat_id=telegram_chat_id, owner_id=owner_id)
                new_chat = _INSERT_OWNED_CHAT if owner_id else _INSERT_CHAT
                chat_id, session_id = _new_id(await conn.execute(new_chat, values)), None
            else:
                chat_id, session_id = found
            if session_id is None:
                session_id = _new_id(await conn.execute(_INSERT_SESSION, {"chat_id": chat_id}))
                await conn.execute(_SET_CURRENT, {"chat_id": chat_id, "sid": session_id})
            return SessionRef(chat_id=chat_id, session_id=session_id, key=key)

    async def new_session(self, key: str, *, telegram_chat_id: int | None = None) -> SessionRef:
        """Close the current session (it stays stored) and open a fresh one."""
        ref = await self.current(key, telegram_chat_id=telegram_chat_id)
        async with self._db.session() as db:
            old = await db.get(Session, ref.session_id)
            if old is not None:
                old.closed_at = datetime.now(UTC)
            fresh = Session(chat_id=ref.chat_id)
            db.add(fresh)
            await db.flush()
            chat = await db.get(Chat, ref.chat_id)
            assert chat is not None  # created by current() above
            chat.current_session_id = fresh.id
        self._tails.drop(ref.session_id)  # closed: no window is read from it again
        return SessionRef(chat_id=ref.chat_id, session_id=fresh.id, key=key)

    async def append(
        self, session_id: int, *messages: NewMessage, usage: UsageRecord | None = None
    ) -> list[int]:
        """Append messages (and the LLM call that produced them) in one transaction; their ids."""
        rows = [_values(session_id, m) for m in messages]
        async with self._db.transaction() as conn:
            ids: list[int] = []
            if len(rows) == 1:  # the common case: no RETURNING machinery for one row
                ids = [_new_id(await conn.execute(_INSERT_MESSAGE, rows[0]))]
            elif rows:
                ids = [int(i) for i in (await conn.execute(_INSERT_MESSAGES, rows)).scalars()]
            if usage is not None:
                await conn.execute(_INSERT_USAGE, usage_values(usage))
            previous = await self._before(conn, session_id, ids)
        self._follow(session_id, previous, ids, rows)
        return ids

    async def add_answer(
        self,
        session_id: int,
        message: NewMessage,
        *,
        usage: UsageRecord | None = None,
        exchange: Exchange | None = None,
    ) -> int:
        """Store an answer, the LLM call that produced it, and (``exchange``) its question and
        itself as episodes with the episodes recalled for it, in one transaction: after a crash
        there is never an answer without its episodes nor an episode without its answer. The
        answer episode's meta gets the answer's ``message_id``. Returns that id."""
        row = _values(session_id, message)
        async with self._db.transaction() as conn:
            message_id = _new_id(await conn.execute(_INSERT_MESSAGE, row))
            if usage is not None:
                await conn.execute(_INSERT_USAGE, usage_values(usage))
            if exchange is not None:
                answer = replace(
                    exchange.answer, meta={**(exchange.answer.meta or {}), "message_id": message_id}
                )
                await insert_episodes(conn, exchange.owner, with_context([exchange.question, answer]))
                await record_recalls(conn, message_id, exchange.recalled_ids)
            previous = await self._before(conn, session_id, [message_id])
        self._follow(session_id, previous, [message_id], [row])
        return message_id

    async def add_question(
        self, session_id: int, message: NewMessage, *, window_tokens: int | None = None
    ) -> Asked:
        """Store a user message unless its Telegram update was stored already, and read the
        prompt window (``window_tokens`` > 0) after it, all in one transaction.

        ``Asked.earlier`` is the message stored before for the same Telegram update (a replay),
        or None. The window comes from the session's tail in memory when the database's newest
        message before this one is the tail's last, else from the database.
        """
        values = _values(session_id, message)
        async with self._db.transaction() as conn:
            earlier = None
            if message.telegram_update_id is None:
                await conn.execute(_INSERT_MESSAGE, values)
            else:
                question = {name: values[name] for name in _QUESTION_COLUMNS}
                if not (await conn.execute(_INSERT_QUESTION, question)).rowcount:
                    earlier = await _stored_question(conn, session_id, message.telegram_update_id)
            if not window_tokens:
                return Asked(earlier=earlier, window=[])
            # Inside this write transaction nobody else writes: the newest is this question.
            newest = list((await conn.execute(_NEWEST_IDS, _ids_params(session_id, limit=2))).scalars())
            if earlier is None:
                asked_id, previous = newest[0], (newest[1] if len(newest) > 1 else None)
            else:  # a replay: nothing was added
                asked_id, previous = None, newest[0]
            tail = self._tails.get(session_id)
            fresh = None
            if tail is None or tail.last_id != previous or not tail.fits(window_tokens):
                fresh = await _tail(conn, session_id, window_tokens)
        if fresh is not None:
            self._tails.put(session_id, fresh)
            tail = fresh
        assert tail is not None  # checked above, or read afresh
        if fresh is None and asked_id is not None:
            tail.add(_stored_row(asked_id, values))
        return Asked(earlier=earlier, window=tail.cut(window_tokens))

    async def after(self, session_id: int, message_id: int) -> list[StoredMessage]:
        """Messages stored after ``message_id`` in the session (e.g. the reply to it)."""
        async with self._db.session() as db:
            rows = await db.scalars(
                select(Message)
                .where(Message.session_id == session_id, Message.id > message_id)
                .order_by(Message.id)
            )
            return [_stored(r) for r in rows]

    async def window(
        self, session_id: int, token_budget: int, max_messages: int = ROWS
    ) -> list[StoredMessage]:
        """The newest messages whose ``tokens`` sum fits ``token_budget``, oldest first, after
        the session's latest summary (which comes first, and counts against the budget).

        The history starts at a user message, so it never opens with a tool result or an
        assistant tool call whose results were cut off. The newest message is always included.
        Read from the database (the newest ``max_messages``, at most ``ROWS``), not memory.
        """
        async with self._db.connection() as conn:
            tail = await _tail(conn, session_id, token_budget, max_messages)
        return tail.cut(token_budget)

    async def unsummarised(
        self, session_id: int, max_messages: int = ROWS
    ) -> tuple[StoredMessage | None, list[StoredMessage]]:
        """The session's latest summary and the messages after the ones it covers, oldest
        first (of the newest ``max_messages``): what compaction may summarise next."""
        async with self._db.connection() as conn:
            tail = await _tail(conn, session_id, AFTER_LAST_ID, max_messages)
        return tail.unsummarised()

    async def add_summary(
        self, session_id: int, text: str, *, through: int, usage: UsageRecord | None = None
    ) -> int:
        """Store a summary of the session's messages up to id ``through`` (and of the summary
        before it), with the LLM call that wrote it; the window starts with it from now on."""
        summary = NewMessage(
            role=SUMMARY_ROLE, content=text, tool_call_id=str(through), tool_name=SUMMARY_NAME
        )
        return (await self.append(session_id, summary, usage=usage))[0]

    async def _before(self, conn: Conn, session_id: int, ids: list[int]) -> int | None:
        """The session's newest message before ``ids`` (just stored), if its tail is in memory."""
        if not ids or self._tails.get(session_id) is None:
            return None
        return await conn.scalar(_NEWEST_IDS, _ids_params(session_id, before=ids[0]))  # type: ignore[no-any-return]

    def _follow(
        self, session_id: int, previous: int | None, ids: list[int], rows: list[dict[str, Any]]
    ) -> None:
        """After a commit: the session's tail in memory takes the messages just stored."""
        if ids:
            self._tails.extend(session_id, previous, map(_stored_row, ids, rows))

    async def messages(self, session_id: int) -> list[StoredMessage]:
        async with self._db.session() as db:
            rows = await db.scalars(
                select(Message).where(Message.session_id == session_id).order_by(Message.id)
            )
            return [_stored(r) for r in rows]

    async def stats(self) -> dict[str, Any]:
        """Counts for /status: chats, sessions, messages, and messages since midnight UTC."""
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        async with self._db.session() as db:
            chats = await db.scalar(select(func.count()).select_from(Chat))
            sessions = await db.scalar(select(func.count()).select_from(Session))
            messages = await db.scalar(select(func.count()).select_from(Message))
            today = await db.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.created_at >= midnight.replace(tzinfo=None))
            )
        return {
            "chats": chats or 0,
            "sessions": sessions or 0,
            "messages": messages or 0,
            "messages_today": today or 0,
        }
