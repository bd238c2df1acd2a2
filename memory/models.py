"""ORM tables. Rows never leave ``memory``: public functions return dataclasses (types.py).

Portable SQLAlchemy types only; SQLite-specific pieces (FTS5, pragmas) live in ``db.py`` and
the migrations, so the same models can run on PostgreSQL later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class PlainText(TypeDecorator[str]):
    """Text anyone may have written. PostgreSQL's text cannot hold a NUL character (it refuses
    the whole statement), so one becomes U+FFFD there; SQLite keeps text as given."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is not None and dialect.name == "postgresql" and "\x00" in value:
            return value.replace("\x00", "\ufffd")
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class User(Base):
    """A Telegram user we have seen (only after the access gate let them through) or ruled on."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    display_name: Mapped[str | None] = mapped_column(String(256))
    username: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16), default="user", server_default="user")
    # "allowed" / "denied" by an admin in chat; NULL: only the environment decides.
    access: Mapped[str | None] = mapped_column(String(16))
    access_by: Mapped[int | None] = mapped_column(BigInteger)
    access_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set by an admin with /limit: tokens per UTC day; NULL: OMNI_USAGE_DAILY_TOKENS applies,
    # 0: no limit. Here rather than in kv: typed, and read in the same statement as the use.
    daily_token_limit: Mapped[int | None] = mapped_column(Integer)
    # An IANA zone name set with /tz: how the user's times are read and shown (scheduled jobs);
    # NULL: OMNI_TIMEZONE.
    timezone: Mapped[str | None] = mapped_column(String(64))


class Chat(Base):
    """A place a conversation happens: a Telegram chat, an `omni chat` name, a gateway session."""

    __tablename__ = "chats"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)  # "tg:<chat id>", "cli:<name>", ...
    telegram_chat_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The session new messages go to; /new points it at a fresh one and the old ones stay.
    current_session_id: Mapped[int | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="SET NULL", use_alter=True, name="fk_chats_current_session")
    )
    created_at: Mapped[datetime] = _now()


class Session(Base):
    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    title: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = _now()
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Message(Base):
    """One entry of a session in the provider's chat format (user, assistant, tool)."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_session_id_id", "session_id", "id"),
        Index("ix_messages_update_id", "telegram_update_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str | None] = mapped_column(PlainText)
    tool_calls: Mapped[list[Any] | None] = mapped_column(JSON)  # assistant's function calls
    tool_call_id: Mapped[str | None] = mapped_column(String(128))  # a tool result answers this call
    tool_name: Mapped[str | None] = mapped_column(String(128))
    tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # size in the window
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    telegram_update_id: Mapped[int | None] = mapped_column(BigInteger)  # the update it came from
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)  # the user's message
    sent_message_ids: Mapped[list[Any] | None] = mapped_column(JSON)  # our reply's messages
    created_at: Mapped[datetime] = _now()


class InboundUpdate(Base):
    """Ledger of Telegram updates: de-duplication and resume after a crash.

    status: received -> processing (claimed by one process, ``claimed_by``) -> answered | failed
    | ignored. The raw update is kept until answered so a crash can be replayed.
    """

    __tablename__ = "updates"
    __table_args__ = (
        Index("ix_updates_status", "status"),
        Index("ix_updates_chat_id_update_id", "chat_id", "update_id"),
    )

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="received", server_default="received")
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    # Until when the claim holds unless renewed; past it another worker may take the update over.
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Episode(Base):
    """A unit of episodic memory; ``q`` is its learned utility, nudged by feedback.

    ``owner_key`` scopes it (``user:<id>``, ``chat:<id>``, ``local:<name>``: memory/episodes.py);
    ``context`` is the neighbouring turn's text, indexed beside ``text`` and ``speaker`` (FTS5,
    migrations/versions/0002_episodes.py) so a question and its answer find each other.
    """

    __tablename__ = "episodes"
    __table_args__ = (
        Index("ix_episodes_user_id_created_at", "user_id", "created_at"),
        Index("ix_episodes_owner_key_created_at", "owner_key", "created_at"),
        # The background embedder's queue (memory/embedding_queue.py): no vector yet, fewest
        # failed attempts first.
        Index(
            "ix_episodes_unembedded",
            "embed_attempts",
            "id",
            sqlite_where=text("embedding IS NULL"),
            postgresql_where=text("embedding IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    owner_key: Mapped[str | None] = mapped_column(String(128))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id", ondelete="SET NULL"))
    speaker: Mapped[str] = mapped_column(String(64), default="user", server_default="user")
    text: Mapped[str] = mapped_column(PlainText)
    context: Mapped[str | None] = mapped_column(PlainText)
    q: Mapped[float] = mapped_column(Float, default=0.5, server_default="0.5")
    recall_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_recalled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Unit-length float32 vector, little-endian (memory/vectors.py); NULL until embedded.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    embed_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = _now()


class AnswerRecall(Base):
    """An episode recalled into the prompt of an answer: what feedback on that answer rewards."""

    __tablename__ = "answer_recalls"
    __table_args__ = (Index("ix_answer_recalls_episode_id", "episode_id"),)

    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), primary_key=True)


class Usage(Base):
    """One LLM call: what it cost and how long it took."""

    __tablename__ = "usage"
    __table_args__ = (
        # One user's use since a moment: the daily limit's check before every turn, /usage.
        Index("ix_usage_user_id_created_at", "user_id", "created_at"),
        # Everyone's use since a moment (/status totals): a range of recent rows, not the table.
        Index("ix_usage_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id", ondelete="SET NULL"))
    model: Mapped[str] = mapped_column(String(128))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cost: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    created_at: Mapped[datetime] = _now()


class KeyValue(Base):
    """Small persisted runtime state (e.g. the model an admin switched to with /model)."""

    __tablename__ = "kv"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = _now()


class ScheduledJob(Base):
    """A reminder (text delivered as is) or a task (a prompt the agent answers) that fires once
    (``start_at``), on a cron expression, or every ``interval_s`` seconds from ``start_at``.

    state: active -> done (a one-shot fired) | missed (a one-shot found too late) | paused <->
    active | cancelled. ``next_run_at`` (UTC) is the next due time of an active job; the
    scheduler claims it and moves it on in one transaction (memory/schedules.py).
    """

    __tablename__ = "scheduled_jobs"
    __table_args__ = (
        # The scheduler's question, "which active jobs are due", and "when is the next one":
        # a range scan of a partial index over active jobs only.
        Index(
            "ix_scheduled_jobs_due",
            "next_run_at",
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
        Index("ix_scheduled_jobs_user_id_state", "user_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    thread_id: Mapped[int | None] = mapped_column(BigInteger)  # a forum topic
    session_key: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # reminder | task
    text: Mapped[str] = mapped_column(PlainText)
    schedule: Mapped[str] = mapped_column(String(16))  # once | cron | interval
    cron: Mapped[str | None] = mapped_column(String(128))
    interval_s: Mapped[int | None] = mapped_column(Integer)
    start_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    timezone: Mapped[str] = mapped_column(String(64))
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    fire_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()


class JobRun(Base):
    """One firing of a scheduled job at one due time: the unique (job_id, due_at) lets one
    claimer only fire it. status: claimed (``claimed_by`` holds it while ``lease_until`` is
    renewed) -> delivered | failed; missed: found past the grace period, not fired."""

    __tablename__ = "job_runs"
    __table_args__ = (
        UniqueConstraint("job_id", "due_at", name="uq_job_runs_job_id_due_at"),
        # Runs still claimed (a handful): what a restart or another worker may take over.
        Index(
            "ix_job_runs_claimed",
            "lease_until",
            sqlite_where=text("status = 'claimed'"),
            postgresql_where=text("status = 'claimed'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("scheduled_jobs.id", ondelete="CASCADE"))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
