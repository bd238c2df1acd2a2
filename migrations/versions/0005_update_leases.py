"""Several workers on one database: a claimed update's lease, renewed while it is worked on.

Revision ID: 0005_update_leases
Revises: 0004_usage_limits
Create Date: 2026-12-01 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_update_leases"
down_revision: str | None = "0004_usage_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# An open update whose lease has run out belongs to a worker that stopped renewing it (killed,
# frozen, cut off): another worker may take it over (memory/updates.py). The open updates of
# one chat are read in order before each is answered: (chat_id, update_id) finds them.


def upgrade() -> None:
    op.add_column("updates", sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_updates_chat_id_update_id", "updates", ["chat_id", "update_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_updates_chat_id_update_id", table_name="updates")
    op.drop_column("updates", "lease_until")
