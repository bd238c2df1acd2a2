"""Knowledge: a full-text index of the text files under a folder, kept in step by mtime and size.

The index lives in its own SQLite file (``OMNI_DATA_DIR/knowledge.db``), not in the main
database, and has no Alembic revision. It is a cache of this machine's disk: everything in it
can be rebuilt from the files at any time, so a file of another layout (``user_version``) or a
damaged one is simply dropped and rebuilt. Keeping it apart also means the skills server, which
never migrates the main database, owns it alone; a first indexing of a large workspace (many
writes) never holds the main database's single write lock against the bot; and it works with
FTS5 even when the main database is PostgreSQL.

Rows are scoped by ``root`` (the caller's folder relative to the workspace: ``.`` for admins and
IDEs, ``users/<id>`` for a non-admin; :func:`user_root`) and a search only reads its own root's
rows. ``/forget all`` drops a non-admin's root (:meth:`KnowledgeIndex.forget_root`). What goes in
is decided by the caller (skills/knowledge walks the folder); this module stores and searches.

Every method blocks: callers run them in a worker thread. One connection, taken in turns.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3  # imported on first use: the skills server imports this module at start

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CHUNK_CHARS = 1_200  # a chunk ends at the first blank line after this many characters
MAX_CHUNK_CHARS = 4_000  # ... or here, whatever the text
SNIPPET_TOKENS = 24

_SCHEMA = (
    "CREATE TABLE files (id INTEGER PRIMARY KEY, root TEXT NOT NULL, path TEXT NOT NULL, "
    "mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL, UNIQUE (root, path))",
    "CREATE TABLE chunks (id INTEGER PRIMARY KEY, "
    "file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE, "
    "line INTEGER NOT NULL, path TEXT NOT NULL, body TEXT NOT NULL)",
    "CREATE INDEX chunks_file ON chunks(file_id)",
    "CREATE VIRTUAL TABLE chunks_fts USING fts5(path, body, content='chunks', content_rowid='id', "
    "tokenize='porter unicode61')",
    "CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN "
    "INSERT INTO chunks_fts(rowid, path, body) VALUES (new.id, new.path, new.body); END",
    "CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN "
    "INSERT INTO chunks_fts(chunks_fts, rowid, path, body) "
    "VALUES ('delete', old.id, old.path, old.body); END",
)
_FILE_ID = "SELECT id FROM files WHERE root = ? AND path = ?"
_SEARCH = (
    "SELECT c.path, c.line, snippet(chunks_fts, 1, '**', '**', '…', ?) AS snip, "
    "bm25(chunks_fts) AS rank FROM chunks_fts "
    "JOIN chunks AS c ON c.id = chunks_fts.rowid JOIN files AS f ON f.id = c.file_id "
    "WHERE chunks_fts MATCH ? AND f.root = ? ORDER BY rank LIMIT ?"
)


class _OtherLayout(Exception):
    """The file holds an index of another layout (an older or newer omni)."""


@dataclass(frozen=True, slots=True)
class Stamp:
    """What says a file changed: its modification time (ns) and size."""

    mtime_ns: int
    size: int


@dataclass(frozen=True, slots=True)
class Document:
    path: str  # relative to the root, POSIX style
    stamp: Stamp
    text: str


@dataclass(frozen=True, slots=True)
class Hit:
    path: str
    line: int  # where the matching chunk starts (1-based)
    snippet: str  # matched terms between ** **
    score: float  # BM25, higher is better


def chunks_of(text: str) -> Iterator[tuple[int, str]]:
    """``(first line, chunk)`` pieces of ``text``, cut at blank lines near CHUNK_CHARS."""
    start, size = 1, 0
    lines: list[str] = []
    for number, whole in enumerate(text.splitlines(), start=1):
        # An enormous line (minified text) is cut into pieces of MAX_CHUNK_CHARS.
        for at in range(0, max(len(whole), 1), MAX_CHUNK_CHARS):
            line = whole[at : at + MAX_CHUNK_CHARS]
            if not lines:
                start = number
            lines.append(line)
            size += len(line) + 1
            if (size >= CHUNK_CHARS and not line.strip()) or size >= MAX_CHUNK_CHARS:
                if body := "\n".join(lines).strip():
                    yield start, body
                lines, size = [], 0
    if body := "\n".join(lines).strip():
        yield start, body


INDEX_FILE = "knowledge.db"  # in OMNI_DATA_DIR


def user_root(user_id: int) -> str:
    """The index's root key for a non-admin Telegram user's folder (``WORKSPACE/users/<id>``)."""
    return f"users/{user_id}"


class KnowledgeIndex:
    """The index file; use ``with KnowledgeIndex(path) as index`` or call :meth:`close`."""

    def __init__(self, path: Path) -> None:
        import sqlite3

        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._open()
        except (sqlite3.DatabaseError, _OtherLayout) as exc:  # it is only a cache: start over
            log.warning("knowledge index %s is unusable (%s); rebuilding it", path, exc)
            for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
                path.with_name(name).unlink(missing_ok=True)
            self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        import sqlite3

        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=5000")
            # A removed file's text must not linger in free pages (it may be a user's).
            conn.execute("PRAGMA secure_delete=ON")
            with _transaction(conn):
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                elif version != SCHEMA_VERSION:
                    raise _OtherLayout(f"layout {version}, this omni writes {SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn

    def stamps(self, root: str) -> dict[str, Stamp]:
        """What the index holds for ``root``: each file's path and the stamp it was read at."""
        with self._lock:
            rows = self._conn.execute("SELECT path, mtime_ns, size FROM files WHERE root = ?", (root,))
            return {path: Stamp(mtime, size) for path, mtime, size in rows}

    def apply(self, root: str, documents: Sequence[Document], removed: Collection[str] = ()) -> None:
        """Store (or replace) ``documents`` and drop ``removed`` paths, in one transaction."""
        with self._lock, _transaction(self._conn) as conn:
            for path in [*removed, *(d.path for d in documents)]:
                row = conn.execute(_FILE_ID, (root, path)).fetchone()
                if row is not None:
                    conn.execute("DELETE FROM chunks WHERE file_id = ?", row)
                    conn.execute("DELETE FROM files WHERE id = ?", row)
            for doc in documents:
                file_id = conn.execute(
                    "INSERT INTO files (root, path, mtime_ns, size) VALUES (?, ?, ?, ?) RETURNING id",
                    (root, doc.path, doc.stamp.mtime_ns, doc.stamp.size),
                ).fetchone()[0]
                conn.executemany(
                    "INSERT INTO chunks (file_id, line, path, body) VALUES (?, ?, ?, ?)",
                    [(file_id, line, doc.path, body) for line, body in chunks_of(doc.text)],
                )

    def search(self, root: str, query: str, limit: int = 10) -> list[Hit]:
        """The chunks of ``root``'s files that best match ``query`` (any text: it is never parsed
        as FTS syntax), best first."""
        from memory.recall import fts_query  # the one place user text becomes an FTS query

        match = fts_query(query)
        if match is None or limit <= 0:
            return []
        with self._lock:
            rows = self._conn.execute(_SEARCH, (SNIPPET_TOKENS, match, root, limit)).fetchall()
        return [Hit(path, line, " ".join(snip.split()), -float(rank)) for path, line, snip, rank in rows]

    def forget_root(self, root: str) -> int:
        """Drop everything indexed for ``root`` and leave no copy of its text in the file (the
        full-text index merged, the log copied back and emptied); the number of files dropped."""
        with self._lock:
            with _transaction(self._conn) as conn:
                ids = [row[0] for row in conn.execute("SELECT id FROM files WHERE root = ?", (root,))]
                conn.executemany("DELETE FROM chunks WHERE file_id = ?", [(i,) for i in ids])
                conn.execute("DELETE FROM files WHERE root = ?", (root,))
                conn.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(ids)

    def count(self, root: str) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM files WHERE root = ?", (root,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> KnowledgeIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
