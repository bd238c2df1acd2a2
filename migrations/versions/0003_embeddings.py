"""Episode embeddings as float32 blobs, and the retry state of the background embedder.

Revision ID: 0003_embeddings
Revises: 0002_episodes
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_embeddings"
down_revision: str | None = "0002_episodes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The JSON column of 0001 was never written, so it is replaced rather than converted. Plain
# DROP/ADD COLUMN (SQLite >= 3.35), no batch copy: a table copy would drop the FTS triggers.
# The partial index is the embedder's queue: episodes without a vector, fewest attempts first.
_PENDING = sa.text("embedding IS NULL")


def upgrade() -> None:
    op.drop_column("episodes", "embedding")
    op.add_column("episodes", sa.Column("embedding", sa.LargeBinary(), nullable=True))
    op.add_column("episodes", sa.Column("embed_attempts", sa.Integer(), server_default="0", nullable=False))
    op.create_index(
        "ix_episodes_unembedded",
        "episodes",
        ["embed_attempts", "id"],
        unique=False,
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_episodes_unembedded", table_name="episodes")
    op.drop_column("episodes", "embed_attempts")
    op.drop_column("episodes", "embedding")
    op.add_column("episodes", sa.Column("embedding", sa.JSON(), nullable=True))
