"""Chats, their sessions, and the messages in them.

A chat (``tg:<id>``, ``cli:<name>``, ...) has one current session; ``new_session`` opens a
fresh one and keeps the old. ``window`` returns the newest messages that fit a token budget,
starting at a user message so tool results never lose the call they answer.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CursorResult, Select, bindparam, func, insert, or_, select, update

from memory.connection import Conn
from memory.db import Database
from memory.episodes import insert_episodes, record_recalls, with_context
from memory.models import Chat, Message, Session, Usage, User
from memory.types import Asked, Exchange, NewMessage, SessionRef, StoredMessage, UsageRecord
from memory.usage import usage_values

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


def _values(session_id: int, msg: NewMessage) -> dict[str, Any]:
    return dict(
        session_id=session_id,
        user_id=msg.user_id,
        role=msg.role,
        content=msg.content,
        tool_calls=msg.tool_calls,
        tool_call_id=msg.tool_call_id,
        tool_name=msg.tool_name,
        tokens=msg.tokens,
        prompt_tokens=msg.prompt_tokens,
        completion_tokens=msg.completion_tokens,
        telegram_update_id=msg.telegram_update_id,
        telegram_message_id=msg.telegram_message_id,
    )


def _window_query() -> Select[Any]:
    """The prompt window's query, built once: it runs on every turn, and building and keying a
    statement with a window function costs more than SQLite takes to run it.

    The running total covers only the newest ``limit`` messages (read through the
    ``(session_id, id)`` index), not the whole session: a session months long costs a turn no
    more than a new one (measured: 30,000 messages took 98 ms a turn when all were summed)."""
    newest = (
        select(*(getattr(Message, name) for name in _WINDOW_COLUMNS))
        .where(Message.session_id == bindparam("session_id"))
        .order_by(Message.id.desc())
        .limit(bindparam("limit", literal_execute=False))
        .subquery()
    )
    newest_first = newest.c.id.desc()
    summed = select(
        *(newest.c[name] for name in _WINDOW_COLUMNS),
        func.sum(newest.c.tokens).over(order_by=newest_first).label("used"),
        func.row_number().over(order_by=newest_first).label("rn"),
    ).subquery()
    return (
        select(*(summed.c[name] for name in _WINDOW_COLUMNS))
        .where(or_(summed.c.rn == 1, summed.c.used <= bindparam("budget")))
        .order_by(summed.c.id.desc())
    )


_WINDOW_QUERY = _window_query()

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


async def _window(conn: Conn, session_id: int, token_budget: int, max_messages: int) -> list[StoredMessage]:
    params = {"session_id": session_id, "budget": token_budget, "limit": max_messages}
    rows = (await conn.execute(_WINDOW_QUERY, params)).all()
    return _trim_to_user_start([_from_window_row(row) for row in reversed(rows)])


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
            return SessionRef(chat_id=ref.chat_id, session_id=fresh.id, key=key)

    async def append(
        self, session_id: int, *messages: NewMessage, usage: UsageRecord | None = None
    ) -> list[int]:
        """Append messages (and the LLM call that produced them) in one transaction; their ids."""
        async with self._db.transaction() as conn:
            ids: list[int] = []
            if len(messages) == 1:  # the common case: no RETURNING machinery for one row
                ids = [_new_id(await conn.execute(_INSERT_MESSAGE, _values(session_id, messages[0])))]
            elif messages:
                result = await conn.execute(_INSERT_MESSAGES, [_values(session_id, m) for m in messages])
                ids = [int(i) for i in result.scalars()]
            if usage is not None:
                await conn.execute(_INSERT_USAGE, usage_values(usage))
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
        async with self._db.transaction() as conn:
            message_id = _new_id(await conn.execute(_INSERT_MESSAGE, _values(session_id, message)))
            if usage is not None:
                await conn.execute(_INSERT_USAGE, usage_values(usage))
            if exchange is not None:
                answer = replace(
                    exchange.answer, meta={**(exchange.answer.meta or {}), "message_id": message_id}
                )
                await insert_episodes(conn, exchange.owner, with_context([exchange.question, answer]))
                await record_recalls(conn, message_id, exchange.recalled_ids)
            return message_id

    async def add_question(
        self, session_id: int, message: NewMessage, *, window_tokens: int | None = None
    ) -> Asked:
        """Store a user message unless its Telegram update was stored already, and read the
        prompt window (``window_tokens`` > 0) after it, all in one transaction.

        ``Asked.earlier`` is the message stored before for the same update (a replay), or None.
        """
        async with self._db.transaction() as conn:
            earlier = None
            values = _values(session_id, message)
            if message.telegram_update_id is None:
                await conn.execute(_INSERT_MESSAGE, values)
            else:
                question = {name: values[name] for name in _QUESTION_COLUMNS}
                if not (await conn.execute(_INSERT_QUESTION, question)).rowcount:
                    earlier = await _stored_question(conn, session_id, message.telegram_update_id)
            window = await _window(conn, session_id, window_tokens, 400) if window_tokens else []
            return Asked(earlier=earlier, window=window)

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
        self, session_id: int, token_budget: int, max_messages: int = 400
    ) -> list[StoredMessage]:
        """The newest messages whose ``tokens`` sum fits ``token_budget``, oldest first.

        The window starts at a user message, so it never opens with a tool result or an
        assistant tool call whose results were cut off. The newest message is always included.
        The database computes the running total (a window function), so only the rows that fit
        come back; this runs on every turn.
        """
        async with self._db.connection() as conn:
            return await _window(conn, session_id, token_budget, max_messages)

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


def _trim_to_user_start(messages: list[StoredMessage]) -> list[StoredMessage]:
    for i, msg in enumerate(messages):
        if msg.role == "user":
            return messages[i:]
    # No user message fits: keep the newest message alone rather than nothing (unless it is a
    # dangling tool result, which a provider would reject).
    return [m for m in messages[-1:] if m.role != "tool"]
