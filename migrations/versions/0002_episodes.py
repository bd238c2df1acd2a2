"""Episodic memory: who said an episode and its neighbouring turn, an (owner, time) index,
the full-text index over text, speaker and context, and which episodes each answer recalled.

Revision ID: 0002_episodes
Revises: 0001_initial
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_episodes"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite-only, as in 0001: the index now has three columns (bm25 weights them in
# memory/recall.py). ``context`` holds the neighbouring turn's text, so a question finds the
# answer that follows it and the other way round; ``speaker`` lets "what did Ana say" match.
# Updates of q/recall_count do not touch the index (the trigger names its columns).
_COLUMNS = ("text", "speaker", "context")


def _fts_up(columns: Sequence[str]) -> list[str]:
    names = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    delete = f"INSERT INTO episodes_fts(episodes_fts, rowid, {names}) VALUES ('delete', old.id, {old});"
    return [
        f"CREATE VIRTUAL TABLE episodes_fts USING fts5({names}, content='episodes', "
        "content_rowid='id', tokenize='porter unicode61')",
        f"CREATE TRIGGER episodes_fts_ai AFTER INSERT ON episodes BEGIN "
        f"INSERT INTO episodes_fts(rowid, {names}) VALUES (new.id, {new}); END",
        f"CREATE TRIGGER episodes_fts_ad AFTER DELETE ON episodes BEGIN {delete} END",
        f"CREATE TRIGGER episodes_fts_au AFTER UPDATE OF {names} ON episodes BEGIN {delete} "
        f"INSERT INTO episodes_fts(rowid, {names}) VALUES (new.id, {new}); END",
        "INSERT INTO episodes_fts(episodes_fts) VALUES ('rebuild')",
    ]


_FTS_DROP = [
    "DROP TRIGGER IF EXISTS episodes_fts_au",
    "DROP TRIGGER IF EXISTS episodes_fts_ad",
    "DROP TRIGGER IF EXISTS episodes_fts_ai",
    "DROP TABLE IF EXISTS episodes_fts",
]


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    # Plain ALTERs (no batch copy): SQLite adds a column with a constant default in place, and a
    # table copy would drop the FTS triggers.
    op.add_column(
        "episodes", sa.Column("speaker", sa.String(length=64), server_default="user", nullable=False)
    )
    op.add_column("episodes", sa.Column("context", sa.Text(), nullable=True))
    op.drop_index("ix_episodes_owner_key", table_name="episodes")
    op.create_index("ix_episodes_owner_key_created_at", "episodes", ["owner_key", "created_at"], unique=False)
    op.create_table(
        "answer_recalls",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("episode_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["episode_id"], ["episodes.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("message_id", "episode_id"),
    )
    op.create_index("ix_answer_recalls_episode_id", "answer_recalls", ["episode_id"], unique=False)
    if _sqlite():
        for statement in [*_FTS_DROP, *_fts_up(_COLUMNS)]:
            op.execute(statement)


def downgrade() -> None:
    if _sqlite():
        for statement in [*_FTS_DROP, *_fts_up(("text",))]:
            op.execute(statement)
    op.drop_index("ix_answer_recalls_episode_id", table_name="answer_recalls")
    op.drop_table("answer_recalls")
    op.drop_index("ix_episodes_owner_key_created_at", table_name="episodes")
    op.create_index("ix_episodes_owner_key", "episodes", ["owner_key"], unique=False)
    with op.batch_alter_table("episodes", recreate="never") as batch_op:
        batch_op.drop_column("context")
        batch_op.drop_column("speaker")
