"""PostgreSQL recall: one GIN index over (owner_key, search), in place of 0002's over search.

Revision ID: 0006_owner_search_index
Revises: 0005_update_leases
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from alembic import op
from sqlalchemy.exc import DBAPIError

revision: str = "0006_owner_search_index"
down_revision: str | None = "0005_update_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)

# A recall asks for one owner's episodes that hold some words. With 0002's indexes PostgreSQL
# either reads the words' rows of every owner from the GIN index and intersects them with the
# owner's from the btree (a common word: ~400,000 rows of 1,000,000, 160 ms), or ranks every
# episode of the owner (bench/memory_scale.py). A GIN index whose first column is the owner
# intersects the two inside the index, where the rarer list drives the scan: the same role as
# the owner token in SQLite's FTS5 index (0002). Its owner column needs btree_gin, a contrib
# extension that any role with CREATE on the database may install (trusted, PostgreSQL 13+).
# Where it cannot be installed, 0002's index stays: recall is right, only slower over a long
# memory, and the warning says what an administrator can run.
_INDEX = "CREATE INDEX ix_episodes_owner_key_search ON episodes USING gin (owner_key, search)"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite's FTS5 index has had the owner since 0002
    try:
        with bind.begin_nested():
            op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    except DBAPIError as exc:
        log.warning(
            "could not install the btree_gin extension (%s); recall over long memories will be "
            "slower. A database administrator can run: CREATE EXTENSION btree_gin; %s; "
            "DROP INDEX ix_episodes_search;",
            str(exc.orig).splitlines()[0] if exc.orig else exc.__class__.__name__,
            _INDEX,
        )
        return
    op.execute(_INDEX)
    op.execute("DROP INDEX IF EXISTS ix_episodes_search")  # every recall names its owner


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE INDEX IF NOT EXISTS ix_episodes_search ON episodes USING gin (search)")
    op.execute("DROP INDEX IF EXISTS ix_episodes_owner_key_search")
