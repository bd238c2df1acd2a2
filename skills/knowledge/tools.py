"""The knowledge skill: full-text search over the text and Markdown files of the caller's folder.

Before each search the index (memory/knowledge.py) is brought in step with the disk: the
caller's root is walked through directory descriptors (skills/_fs.py), a file whose mtime and
size match what was indexed is not read again, a changed one is re-read and re-chunked, and a
file that is gone (or no longer a readable text file) leaves the index. Symlinks are never
followed, FIFOs and devices never opened, hidden folders (``.git``...) not entered.
"""

# Annotations are evaluated once, here: the SDK reads a tool's hints several times at start-up
# and string annotations (``from __future__ import annotations``) would be re-parsed each time.

import os
import stat
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated

import anyio
from pydantic import BaseModel, Field

from memory.knowledge import Document, KnowledgeIndex, Stamp
from skills._context import ToolContext, caller_root, skills_context, stores_of
from skills._fs import lstat_at, open_regular, open_root, read_up_to, shown, walk
from skills._tool import SkillError, tool

TEXT_SUFFIXES = frozenset({".md", ".markdown", ".mdx", ".txt", ".text", ".rst"})
SKIPPED_DIRS = frozenset({"node_modules", "__pycache__"})  # besides every hidden folder
MAX_FILE_BYTES = 1024 * 1024  # larger files are logs or dumps, not notes
MAX_FILES = 20_000  # indexed per root
BATCH_BYTES = 4 * 1024 * 1024  # of text held in memory before it is written to the index


class IndexState(BaseModel):
    files: int = Field(description="Text files in the index for this folder")
    added: int
    updated: int
    removed: int
    skipped: int = Field(description="Text files left out: too large, binary or unreadable")
    truncated: bool = Field(description=f"More than {MAX_FILES} text files: the rest are not indexed")


class KnowledgeHit(BaseModel):
    path: str
    line: int = Field(description="First line of the matching passage")
    snippet: str = Field(description="The passage around the match, matched words in **")


class KnowledgeResult(BaseModel):
    hits: list[KnowledgeHit]
    index: IndexState


@dataclass(slots=True)
class _Refresh:
    """One pass over a root: what it found, and the documents not yet written."""

    index: KnowledgeIndex
    key: str
    known: dict[str, Stamp]
    seen: set[str] = field(default_factory=set)
    batch: list[Document] = field(default_factory=list)
    batch_bytes: int = 0
    added: int = 0
    updated: int = 0
    skipped: int = 0
    truncated: bool = False

    def visit(self, dir_fd: int, name: str, rel: str) -> None:
        st = lstat_at(dir_fd, name)
        if st is None or not stat.S_ISREG(st.st_mode):
            return  # gone, a symlink, a FIFO, a device: never opened
        if rel not in self.known and len(self.seen) >= MAX_FILES:
            self.truncated = True
            return
        if self.known.get(rel) == Stamp(st.st_mtime_ns, st.st_size):
            self.seen.add(rel)
            return
        read = _read_text(dir_fd, name, rel)
        if read is None:
            self.skipped += 1
            return
        stamp, text = read
        self.seen.add(rel)
        self.batch.append(Document(rel, stamp, text))
        self.batch_bytes += len(text)
        if rel in self.known:
            self.updated += 1
        else:
            self.added += 1
        if self.batch_bytes >= BATCH_BYTES:
            self.flush()

    def flush(self, removed: set[str] | None = None) -> None:
        self.index.apply(self.key, self.batch, removed or ())
        self.batch, self.batch_bytes = [], 0

    def finish(self) -> IndexState:
        removed = set(self.known) - self.seen
        self.flush(removed)
        return IndexState(
            files=len(self.seen),
            added=self.added,
            updated=self.updated,
            removed=len(removed),
            skipped=self.skipped,
            truncated=self.truncated,
        )


def _read_text(dir_fd: int, name: str, rel: str) -> tuple[Stamp, str] | None:
    """The file's stamp and text, or None when it is too large, binary or cannot be opened."""
    try:
        with open_regular(dir_fd, name, os.O_RDONLY, rel) as fd:  # O_NOFOLLOW, refuses FIFOs
            st = os.fstat(fd)
            if st.st_size > MAX_FILE_BYTES:
                return None
            data = read_up_to(fd, MAX_FILE_BYTES)
    except (SkillError, OSError):  # swapped for a link or a FIFO since the lstat, gone, no access
        return None
    if b"\0" in data:
        return None
    return Stamp(st.st_mtime_ns, st.st_size), data.decode("utf-8", errors="replace")


def _refresh(index: KnowledgeIndex, workspace: Path, root: Path) -> tuple[str, IndexState]:
    """Bring ``root``'s part of the index in step with the disk (blocking); its key and state."""
    key = shown(root.relative_to(workspace).parts)
    run = _Refresh(index, key, index.stamps(key))
    with open_root(workspace, root) as root_fd, closing(walk(root_fd)) as tree:
        for dirpath, dirnames, filenames, dir_fd in tree:
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIPPED_DIRS)
            folder = PurePosixPath(dirpath).parts
            for name in sorted(filenames):
                if PurePosixPath(name).suffix.lower() in TEXT_SUFFIXES:
                    run.visit(dir_fd, name, shown((*folder, name)))
    return key, run.finish()


async def _refreshed(ctx: ToolContext) -> tuple[KnowledgeIndex, str, IndexState]:
    workspace = skills_context(ctx).workspace
    root = await caller_root(ctx)
    index = await stores_of(ctx).knowledge()
    key, state = await anyio.to_thread.run_sync(
        lambda: _refresh(index, workspace, root), abandon_on_cancel=True
    )
    return index, key, state


@tool(read_only=True, idempotent=True)
async def search_knowledge(
    ctx: ToolContext,
    query: Annotated[str, Field(max_length=10_000, description="What to look for, in plain words")],
    limit: Annotated[int, Field(ge=1, le=50, description="At most this many passages")] = 10,
) -> KnowledgeResult:
    """Search the text and Markdown files of the workspace (.md, .txt, .rst ...) by their words;
    returns the best passages with path, line and a snippet. The index is refreshed first."""
    index, key, state = await _refreshed(ctx)
    hits = await anyio.to_thread.run_sync(index.search, key, query, limit)
    return KnowledgeResult(
        hits=[KnowledgeHit(path=h.path, line=h.line, snippet=h.snippet) for h in hits], index=state
    )


@tool(read_only=True, idempotent=True)
async def index_knowledge(ctx: ToolContext) -> IndexState:
    """Bring the workspace's text-file index up to date now and say what changed."""
    _, _, state = await _refreshed(ctx)
    return state
