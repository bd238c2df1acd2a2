"""The files skill: workspace-confined file operations.

Every operation goes through directory descriptors (skills/_fs.py): symlinks are never
followed, FIFOs and devices are never opened for reading or writing, and what is checked is
what is used. Non-admin callers also have a quota and may not change ``.git`` folders.
"""

# Annotations are evaluated once, here: the SDK reads a tool's hints several times at start-up
# and string annotations (``from __future__ import annotations``) would be re-parsed each time.

import errno
import fnmatch
import os
import shutil
import stat
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, TypeVar

import anyio
from pydantic import BaseModel, Field

from skills._context import ToolContext, caller_of, caller_root, skills_context
from skills._fs import (
    Kind,
    Missing,
    kind_of,
    lstat_at,
    open_dir,
    open_parent,
    open_regular,
    open_root,
    read_up_to,
    refusal,
    shown,
    usage,
    walk,
    write_all,
)
from skills._tool import SkillError, tool
from skills._workspace import parts_of

READ_CAP = 256 * 1024
SEARCH_FILE_CAP = 2 * 1024 * 1024
# What one listing or search may return: more costs the model tokens it cannot use.
LIST_CAP = 1000
OUTPUT_CAP = 256 * 1024
# A rough JSON cost per entry or match on top of its strings, for the OUTPUT_CAP budget.
ITEM_OVERHEAD = 48

PathArg = Annotated[str, Field(description="Path relative to the workspace root")]
T = TypeVar("T")
Parts = tuple[str, ...]


class Entry(BaseModel):
    name: str
    type: Kind
    size: int


class Listing(BaseModel):
    path: str
    entries: list[Entry]
    total: int = Field(description="Entries in the folder; more than listed when truncated")
    truncated: bool


class Match(BaseModel):
    path: str
    line: int | None = None
    text: str | None = None


class SearchResult(BaseModel):
    matches: list[Match]
    truncated: bool


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a call may act and under which limits."""

    workspace: Path
    root: Path
    restricted: bool  # a non-admin: quota applies, .git folders are off limits
    max_write: int
    quota: int

    def parts(self, path: str) -> Parts:
        return parts_of(self.root, path)

    async def run(self, work: Callable[[int], T]) -> T:
        """Run ``work(root_fd)`` in a worker thread; nothing in it may block indefinitely."""

        def in_root() -> T:
            with open_root(self.workspace, self.root) as root_fd:
                return work(root_fd)

        return await anyio.to_thread.run_sync(in_root, abandon_on_cancel=True)

    def guard_git(self, *paths: Parts) -> None:
        """Non-admins may not change ``.git`` folders: a written git config can run code."""
        # casefold and trailing dots/spaces: names some file systems treat as ``.git`` too
        if self.restricted and any(p.casefold().rstrip(". ") == ".git" for parts in paths for p in parts):
            raise SkillError("non-admin users may not change anything inside a .git folder")

    def check_size(self, size: int) -> None:
        if size > self.max_write:
            raise SkillError(f"this would write {size} bytes; the limit per write is {self.max_write} bytes")

    def check_quota(self, root_fd: int, growth: int) -> None:
        """Refuse growing a non-admin's folder past the quota; shrinking is always allowed."""
        if not self.restricted or growth <= 0:
            return
        # Measured each time rather than tracked, which cannot drift: ~20 ms for 5,000 files.
        after = usage(root_fd) + growth
        if after > self.quota:
            raise SkillError(
                f"this would bring your folder to {after} bytes, over its quota of {self.quota} bytes; "
                "delete something first"
            )


async def _scope(ctx: ToolContext) -> Scope:
    settings = skills_context(ctx)
    return Scope(
        workspace=settings.workspace,
        root=await caller_root(ctx),
        restricted=not caller_of(ctx).unrestricted,
        max_write=settings.max_write_bytes,
        quota=settings.quota_bytes,
    )


def _size_now(root_fd: int, parts: Parts) -> int:
    """The size of the regular file at ``parts``, 0 if there is none (yet)."""
    try:
        with open_parent(root_fd, parts) as (dir_fd, name):
            st = lstat_at(dir_fd, name)
    except Missing:
        return 0
    return st.st_size if st is not None and stat.S_ISREG(st.st_mode) else 0


def _require_file_path(parts: Parts) -> None:
    if not parts:
        raise SkillError("'.' is a folder, not a file")


@tool(read_only=True, idempotent=True)
async def list_files(ctx: ToolContext, path: PathArg = ".") -> Listing:
    """List the files and folders in a workspace folder (at most 1,000 entries, sorted by name)."""
    scope = await _scope(ctx)
    parts = scope.parts(path)

    def work(root_fd: int) -> Listing:
        with open_dir(root_fd, parts) as fd:
            with os.scandir(fd) as found:
                names = sorted(entry.name for entry in found)
            kept = _first_that_fit(names)
            entries = [_entry(fd, name) for name in kept]
        return Listing(
            path=shown(parts),
            entries=[entry for entry in entries if entry is not None],
            total=len(names),
            truncated=len(kept) < len(names),
        )

    return await scope.run(work)


def _first_that_fit(names: list[str]) -> list[str]:
    """The first names whose entries fit in LIST_CAP and OUTPUT_CAP."""
    budget = OUTPUT_CAP
    for count, name in enumerate(names[:LIST_CAP]):
        budget -= len(name.encode()) + ITEM_OVERHEAD
        if budget < 0:
            return names[:count]
    return names[:LIST_CAP]


def _entry(dir_fd: int, name: str) -> Entry | None:
    st = lstat_at(dir_fd, name)
    if st is None:  # removed since the scan
        return None
    kind = kind_of(st.st_mode)
    return Entry(name=name, type=kind, size=st.st_size if kind == "file" else 0)


@tool(read_only=True, idempotent=True)
async def read_file(
    ctx: ToolContext,
    path: PathArg,
    max_bytes: Annotated[
        int, Field(ge=1, le=READ_CAP, description="Read at most this many bytes")
    ] = READ_CAP,
) -> str:
    """Read a UTF-8 text file from the workspace (large files are truncated with a note)."""
    scope = await _scope(ctx)
    parts = scope.parts(path)
    _require_file_path(parts)

    def work(root_fd: int) -> tuple[bytes, int]:
        with (
            open_parent(root_fd, parts) as (dir_fd, name),
            open_regular(dir_fd, name, os.O_RDONLY, shown(parts)) as fd,
        ):
            return read_up_to(fd, max_bytes), os.fstat(fd).st_size

    data, size = await scope.run(work)
    text = data.decode("utf-8", errors="replace")
    if size > max_bytes:
        text += f"\n\n[truncated: showed {max_bytes} of {size} bytes]"
    return text


@tool(read_only=False, destructive=True, idempotent=True)
async def write_file(ctx: ToolContext, path: PathArg, content: str) -> str:
    """Create or overwrite a text file in the workspace (parent folders are created)."""
    written = await _put(ctx, path, content, append=False)
    return f"wrote {written}"


@tool(read_only=False)
async def append_file(ctx: ToolContext, path: PathArg, content: str) -> str:
    """Append text to a file in the workspace (created if missing)."""
    written = await _put(ctx, path, content, append=True)
    return f"appended {written}"


async def _put(ctx: ToolContext, path: str, content: str, *, append: bool) -> str:
    """Write or append ``content`` within the caps; returns "<n> bytes to <path>"."""
    scope = await _scope(ctx)
    parts = scope.parts(path)
    _require_file_path(parts)
    scope.guard_git(parts)
    data = content.encode()
    scope.check_size(len(data))
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)

    def work(root_fd: int) -> None:
        growth = len(data) if append else len(data) - _size_now(root_fd, parts)
        scope.check_quota(root_fd, growth)
        with (
            open_parent(root_fd, parts, create=True) as (dir_fd, name),
            open_regular(dir_fd, name, flags, shown(parts)) as fd,
        ):
            write_all(fd, data)

    await scope.run(work)
    return f"{len(data)} bytes to {shown(parts)}"


@tool(read_only=False, destructive=True)
async def edit_file(
    ctx: ToolContext,
    path: PathArg,
    find: Annotated[str, Field(min_length=1, description="Exact text to replace")],
    replace: str,
    replace_all: bool = False,
) -> str:
    """Replace exact text in a workspace file; fails if the text is missing or ambiguous."""
    scope = await _scope(ctx)
    parts = scope.parts(path)
    _require_file_path(parts)
    scope.guard_git(parts)

    def work(root_fd: int) -> int:
        with (
            open_parent(root_fd, parts) as (dir_fd, name),
            open_regular(dir_fd, name, os.O_RDWR, shown(parts)) as fd,
        ):
            size = os.fstat(fd).st_size
            if size > scope.max_write:  # the whole file is rewritten: it must fit in one write
                raise SkillError(f"{path!r} is larger than the limit per write ({scope.max_write} bytes)")
            try:
                text = read_up_to(fd, size).decode("utf-8")
            except UnicodeDecodeError:
                raise SkillError(f"{path!r} is not UTF-8 text") from None
            count = text.count(find)
            if count == 0:
                raise SkillError(f"text to replace was not found in {path!r}")
            if count > 1 and not replace_all:
                raise SkillError(f"text occurs {count} times in {path!r}; pass replace_all or a longer find")
            data = text.replace(find, replace).encode()
            scope.check_size(len(data))
            scope.check_quota(root_fd, len(data) - size)
            # Rewritten through the same descriptor that was read: no window for a swap.
            os.lseek(fd, 0, os.SEEK_SET)
            write_all(fd, data)
            os.ftruncate(fd, len(data))
            return count

    count = await scope.run(work)
    return f"replaced {count if replace_all else 1} occurrence(s) in {shown(parts)}"


@tool(read_only=False, destructive=True)
async def move_file(ctx: ToolContext, source: PathArg, destination: PathArg) -> str:
    """Move or rename a file or folder inside the workspace (never overwrites)."""
    scope = await _scope(ctx)
    src, dst = scope.parts(source), scope.parts(destination)
    if not src:
        raise SkillError("cannot move the workspace root")
    scope.guard_git(src, dst)

    def work(root_fd: int) -> Parts:
        with open_parent(root_fd, src) as (src_fd, src_name):
            if lstat_at(src_fd, src_name) is None:
                raise SkillError(f"{source!r} does not exist")
            target = (*dst, src_name) if _kind_at(root_fd, dst) == "dir" else dst
            with open_parent(root_fd, target, create=True) as (dst_fd, dst_name):
                if lstat_at(dst_fd, dst_name) is not None:
                    raise SkillError(f"{shown(target)!r} already exists")
                try:
                    os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                except OSError as err:
                    if err.errno == errno.EINVAL:
                        raise SkillError(f"cannot move {source!r} into itself") from None
                    raise refusal(err, shown(target)) from None
        return target

    target = await scope.run(work)
    return f"moved {shown(src)} to {shown(target)}"


def _kind_at(root_fd: int, parts: Parts) -> Kind | None:
    if not parts:
        return "dir"
    try:
        with open_parent(root_fd, parts) as (dir_fd, name):
            st = lstat_at(dir_fd, name)
    except Missing:
        return None
    return None if st is None else kind_of(st.st_mode)


@tool(read_only=False, destructive=True, idempotent=True)
async def delete_file(ctx: ToolContext, path: PathArg, recursive: bool = False) -> str:
    """Delete a file, a symlink (not its target) or an empty folder; ``recursive`` also a full folder."""
    scope = await _scope(ctx)
    parts = scope.parts(path)
    if not parts:
        raise SkillError("cannot delete the workspace root")
    scope.guard_git(parts)

    def work(root_fd: int) -> None:
        with open_parent(root_fd, parts) as (dir_fd, name):
            st = lstat_at(dir_fd, name)
            if st is None:
                raise SkillError(f"{path!r} does not exist")
            try:
                if not stat.S_ISDIR(st.st_mode):
                    os.unlink(name, dir_fd=dir_fd)  # a symlink goes, its target stays
                elif recursive:
                    shutil.rmtree(name, dir_fd=dir_fd)  # descriptor-based, never follows links
                else:
                    os.rmdir(name, dir_fd=dir_fd)
            except OSError as err:
                if err.errno == errno.ENOTEMPTY:
                    raise SkillError(f"{path!r} is a folder that is not empty; pass recursive=true") from None
                raise refusal(err, shown(parts)) from None

    await scope.run(work)
    return f"deleted {shown(parts)}"


@tool(read_only=True, idempotent=True)
async def search_files(
    ctx: ToolContext,
    pattern: Annotated[str, Field(description="Glob on the relative path, e.g. '**/*.py' or '*.md'")] = "*",
    text: Annotated[str | None, Field(description="Only lines containing this text")] = None,
    path: PathArg = ".",
    max_results: Annotated[int, Field(ge=1, le=1000)] = 100,
) -> SearchResult:
    """Find regular files by glob pattern and, optionally, lines containing a text."""
    scope = await _scope(ctx)
    parts = scope.parts(path)
    return await scope.run(lambda root_fd: _search(root_fd, parts, pattern, text, max_results))


def _search(root_fd: int, base: Parts, pattern: str, text: str | None, limit: int) -> SearchResult:
    matches: list[Match] = []
    budget = OUTPUT_CAP
    glob = pattern.removeprefix("**/")
    with open_dir(root_fd, base) as base_fd, closing(walk(base_fd)) as tree:
        for dirpath, dirnames, filenames, dir_fd in tree:
            dirnames.sort()
            folder = (*base, *PurePosixPath(dirpath).parts)
            for name in sorted(filenames):
                rel = shown((*folder, name))
                if not (fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(name, glob)):
                    continue
                if text is None:
                    st = lstat_at(dir_fd, name)
                    found = [Match(path=rel)] if st is not None and stat.S_ISREG(st.st_mode) else []
                else:
                    found = _grep(dir_fd, name, rel, text, limit - len(matches))
                for match in found:
                    budget -= len(match.path) + len(match.text or "") + ITEM_OVERHEAD
                    if budget < 0:
                        return SearchResult(matches=matches, truncated=True)
                    matches.append(match)
                if len(matches) >= limit:
                    return SearchResult(matches=matches[:limit], truncated=True)
    return SearchResult(matches=matches, truncated=False)


def _grep(dir_fd: int, name: str, rel: str, text: str, limit: int) -> list[Match]:
    found: list[Match] = []
    try:
        with open_regular(dir_fd, name, os.O_RDONLY, rel) as fd:
            if os.fstat(fd).st_size > SEARCH_FILE_CAP:
                return found
            with open(fd, encoding="utf-8", errors="replace", closefd=False) as fh:
                for number, line in enumerate(fh, start=1):
                    if text in line:
                        found.append(Match(path=rel, line=number, text=line.rstrip("\n")[:300]))
                        if len(found) >= limit:
                            break
    except SkillError:  # not a regular file, a link, or gone: skipped
        pass
    return found
