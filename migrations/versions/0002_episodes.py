"""Episodic memory: who said an episode and its neighbouring turn, an (owner, time) index,
a contentless full-text index over text, context, speaker and owner, and which episodes each answer
recalled.

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

# SQLite-only, as in 0001. The index is contentless (content=''): it keeps only tokens, and its
# columns need not be columns of ``episodes``:
# - ``text``: the episode's words;
# - ``context``: the neighbouring turns' text, so a question finds the answer that follows it
#   and the other way round (memory/episodes.py fills it);
# - ``owner``: one token naming the owner (``_OWNER_TOKEN``, mirrored by memory/recall.py). A
#   recall matches ``owner : <token> AND (terms)``, and FTS5 evaluates AND by seeking, so its
#   cost follows the owner's episodes, not every owner's.
# - ``speaker``: who said it, weighted low in recall: a name matches half of a two-person
#   conversation, and at the text's weight it swamped the text's relevance.
# Updates of q/recall_count do not
# touch the index (the trigger names its columns). Deletes pass the old values, as a contentless
# table needs; memory/episodes.py merges the index after a forget so no token lingers.
_OWNER_TOKEN = "'o' || lower(hex(coalesce({row}.owner_key, ''))) || '0'"  # hex: one token; 0: no stem


def _values(row: str) -> str:
    return f"{row}.text, {row}.context, {row}.speaker, {_OWNER_TOKEN.format(row=row)}"


def _fts_up() -> list[str]:
    delete = (
        "INSERT INTO episodes_fts(episodes_fts, rowid, text, context, speaker, owner) "
        f"VALUES ('delete', old.id, {_values('old')});"
    )
    insert = (
        f"INSERT INTO episodes_fts(rowid, text, context, speaker, owner) VALUES (new.id, {_values('new')});"
    )
    return [
        "CREATE VIRTUAL TABLE episodes_fts USING fts5(text, context, speaker, owner, content='', "
        "tokenize='porter unicode61')",
        f"CREATE TRIGGER episodes_fts_ai AFTER INSERT ON episodes BEGIN {insert} END",
        f"CREATE TRIGGER episodes_fts_ad AFTER DELETE ON episodes BEGIN {delete} END",
        "CREATE TRIGGER episodes_fts_au AFTER UPDATE OF text, context, speaker, owner_key ON episodes "
        f"BEGIN {delete} {insert} END",
        "INSERT INTO episodes_fts(rowid, text, context, speaker, owner) "
        f"SELECT id, {_values('episodes')} FROM episodes",
    ]


# 0001's index, restored by a downgrade.
_FTS_0001 = [
    "CREATE VIRTUAL TABLE episodes_fts USING fts5("
    "text, content='episodes', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER episodes_fts_ai AFTER INSERT ON episodes BEGIN "
    "INSERT INTO episodes_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER episodes_fts_ad AFTER DELETE ON episodes BEGIN "
    "INSERT INTO episodes_fts(episodes_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER episodes_fts_au AFTER UPDATE OF text ON episodes BEGIN "
    "INSERT INTO episodes_fts(episodes_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO episodes_fts(rowid, text) VALUES (new.id, new.text); END",
    "INSERT INTO episodes_fts(episodes_fts) VALUES ('rebuild')",
]
_FTS_DROP = [
    "DROP TRIGGER IF EXISTS episodes_fts_au",
    "DROP TRIGGER IF EXISTS episodes_fts_ad",
    "DROP TRIGGER IF EXISTS episodes_fts_ai",
    "DROP TABLE IF EXISTS episodes_fts",
]


# PostgreSQL: the same four parts in one generated tsvector, weighted as memory/recall_pg.py
# ranks them (A: text, B: context, D: speaker). The owner is a plain column there: the btree
# on (owner_key, created_at) narrows a recall to one owner, the GIN index to the matching
# words. 'english' stems as FTS5's porter tokenizer does; the speaker is a name, not stemmed.
_PG_SEARCH = (
    "setweight(to_tsvector('english', text), 'A') || "
    "setweight(to_tsvector('english', coalesce(context, '')), 'B') || "
    "setweight(to_tsvector('simple', speaker), 'D')"
)


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
        for statement in [*_FTS_DROP, *_fts_up()]:
            op.execute(statement)
    else:
        op.execute(f"ALTER TABLE episodes ADD COLUMN search tsvector GENERATED ALWAYS AS ({_PG_SEARCH}) STORED")
        op.execute("CREATE INDEX ix_episodes_search ON episodes USING gin (search)")


def downgrade() -> None:
    if _sqlite():
        for statement in [*_FTS_DROP, *_FTS_0001]:
            op.execute(statement)
    else:
        op.execute("DROP INDEX IF EXISTS ix_episodes_search")
        op.execute("ALTER TABLE episodes DROP COLUMN IF EXISTS search")
    op.drop_index("ix_answer_recalls_episode_id", table_name="answer_recalls")
    op.drop_table("answer_recalls")
    op.drop_index("ix_episodes_owner_key_created_at", table_name="episodes")
    op.create_index("ix_episodes_owner_key", "episodes", ["owner_key"], unique=False)
    with op.batch_alter_table("episodes", recreate="never") as batch_op:
        batch_op.drop_column("context")
        batch_op.drop_column("speaker")
