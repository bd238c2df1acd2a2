"""The files skill: workspace-confined file operations."""

# Annotations are evaluated once, here: the SDK reads a tool's hints several times at start-up
# and string annotations (``from __future__ import annotations``) would be re-parsed each time.

import fnmatch
import os
import shutil
from pathlib import Path
from typing import Annotated, Literal

import anyio
from pydantic import BaseModel, Field

from skills._context import ToolContext, caller_root
from skills._tool import SkillError, tool
from skills._workspace import display, inside_workspace

READ_CAP = 256 * 1024
SEARCH_FILE_CAP = 2 * 1024 * 1024

PathArg = Annotated[str, Field(description="Path relative to the workspace root")]


class Entry(BaseModel):
    name: str
    type: Literal["file", "dir", "symlink"]
    size: int


class Listing(BaseModel):
    path: str
    entries: list[Entry]


class Match(BaseModel):
    path: str
    line: int | None = None
    text: str | None = None


class SearchResult(BaseModel):
    matches: list[Match]
    truncated: bool


async def _target(ctx: ToolContext, path: str) -> tuple[Path, Path]:
    root = await caller_root(ctx)
    return root, inside_workspace(root, path)


def _entry(path: Path) -> Entry:
    if path.is_symlink():
        return Entry(name=path.name, type="symlink", size=0)
    if path.is_dir():
        return Entry(name=path.name, type="dir", size=0)
    return Entry(name=path.name, type="file", size=path.stat().st_size)


@tool(read_only=True, idempotent=True)
async def list_files(ctx: ToolContext, path: PathArg = ".") -> Listing:
    """List the files and folders in a workspace folder."""
    root, target = await _target(ctx, path)
    if not target.is_dir():
        raise SkillError(f"{path!r} is not a folder")
    entries = await anyio.to_thread.run_sync(
        lambda: sorted(map(_entry, target.iterdir()), key=lambda e: e.name)
    )
    return Listing(path=display(root, target), entries=entries)


@tool(read_only=True, idempotent=True)
async def read_file(
    ctx: ToolContext,
    path: PathArg,
    max_bytes: Annotated[
        int, Field(ge=1, le=READ_CAP, description="Read at most this many bytes")
    ] = READ_CAP,
) -> str:
    """Read a UTF-8 text file from the workspace (large files are truncated with a note)."""
    _, target = await _target(ctx, path)
    if not target.is_file():
        raise SkillError(f"{path!r} is not a file")
    size = target.stat().st_size
    async with await anyio.open_file(target, "rb") as fh:
        data = await fh.read(max_bytes)
    text = data.decode("utf-8", errors="replace")
    if size > max_bytes:
        text += f"\n\n[truncated: showed {max_bytes} of {size} bytes]"
    return text


@tool(read_only=False, destructive=True, idempotent=True)
async def write_file(ctx: ToolContext, path: PathArg, content: str) -> str:
    """Create or overwrite a text file in the workspace (parent folders are created)."""
    root, target = await _target(ctx, path)
    if target.is_dir():
        raise SkillError(f"{path!r} is a folder")
    await anyio.Path(target.parent).mkdir(parents=True, exist_ok=True)
    await anyio.Path(target).write_text(content, encoding="utf-8")
    return f"wrote {len(content.encode())} bytes to {display(root, target)}"


@tool(read_only=False)
async def append_file(ctx: ToolContext, path: PathArg, content: str) -> str:
    """Append text to a file in the workspace (created if missing)."""
    root, target = await _target(ctx, path)
    if target.is_dir():
        raise SkillError(f"{path!r} is a folder")
    await anyio.Path(target.parent).mkdir(parents=True, exist_ok=True)
    async with await anyio.open_file(target, "a", encoding="utf-8") as fh:
        await fh.write(content)
    return f"appended {len(content.encode())} bytes to {display(root, target)}"


@tool(read_only=False, destructive=True)
async def edit_file(
    ctx: ToolContext,
    path: PathArg,
    find: Annotated[str, Field(min_length=1, description="Exact text to replace")],
    replace: str,
    replace_all: bool = False,
) -> str:
    """Replace exact text in a workspace file; fails if the text is missing or ambiguous."""
    root, target = await _target(ctx, path)
    if not target.is_file():
        raise SkillError(f"{path!r} is not a file")
    text = await anyio.Path(target).read_text(encoding="utf-8")
    count = text.count(find)
    if count == 0:
        raise SkillError(f"text to replace was not found in {path!r}")
    if count > 1 and not replace_all:
        raise SkillError(f"text occurs {count} times in {path!r}; pass replace_all or a longer find")
    await anyio.Path(target).write_text(text.replace(find, replace), encoding="utf-8")
    return f"replaced {count if replace_all else 1} occurrence(s) in {display(root, target)}"


@tool(read_only=False, destructive=True)
async def move_file(ctx: ToolContext, source: PathArg, destination: PathArg) -> str:
    """Move or rename a file or folder inside the workspace (never overwrites)."""
    root = await caller_root(ctx)
    src, dst = inside_workspace(root, source), inside_workspace(root, destination)
    if not src.exists():
        raise SkillError(f"{source!r} does not exist")
    if src == root:
        raise SkillError("cannot move the workspace root")
    if dst.is_dir():
        dst = dst / src.name
    if dst.exists():
        raise SkillError(f"{display(root, dst)!r} already exists")
    await anyio.Path(dst.parent).mkdir(parents=True, exist_ok=True)
    await anyio.to_thread.run_sync(shutil.move, src, dst)
    return f"moved {display(root, src)} to {display(root, dst)}"


@tool(read_only=False, destructive=True, idempotent=True)
async def delete_file(ctx: ToolContext, path: PathArg, recursive: bool = False) -> str:
    """Delete a file or an empty folder; ``recursive`` deletes a folder with its contents."""
    root, target = await _target(ctx, path)
    if target == root:
        raise SkillError("cannot delete the workspace root")
    if not target.exists() and not target.is_symlink():
        raise SkillError(f"{path!r} does not exist")
    if target.is_dir() and not target.is_symlink():
        if recursive:
            await anyio.to_thread.run_sync(shutil.rmtree, target)
        elif any(target.iterdir()):
            raise SkillError(f"{path!r} is a folder that is not empty; pass recursive=true")
        else:
            await anyio.Path(target).rmdir()
    else:
        await anyio.Path(target).unlink()
    return f"deleted {display(root, target)}"


@tool(read_only=True, idempotent=True)
async def search_files(
    ctx: ToolContext,
    pattern: Annotated[str, Field(description="Glob on the relative path, e.g. '**/*.py' or '*.md'")] = "*",
    text: Annotated[str | None, Field(description="Only lines containing this text")] = None,
    path: PathArg = ".",
    max_results: Annotated[int, Field(ge=1, le=1000)] = 100,
) -> SearchResult:
    """Find files by glob pattern and, optionally, lines containing a text."""
    root, base = await _target(ctx, path)
    if not base.is_dir():
        raise SkillError(f"{path!r} is not a folder")
    return await anyio.to_thread.run_sync(_search, root, base, pattern, text, max_results)


def _search(root: Path, base: Path, pattern: str, text: str | None, limit: int) -> SearchResult:
    matches: list[Match] = []
    glob = pattern.removeprefix("**/")
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            file = Path(dirpath) / name
            rel = display(root, file)
            if not (fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(name, glob)):
                continue
            if text is None:
                matches.append(Match(path=rel))
            else:
                matches.extend(_grep(file, rel, text, limit - len(matches)))
            if len(matches) >= limit:
                return SearchResult(matches=matches[:limit], truncated=True)
    return SearchResult(matches=matches, truncated=False)


def _grep(file: Path, rel: str, text: str, limit: int) -> list[Match]:
    if file.is_symlink() or file.stat().st_size > SEARCH_FILE_CAP:
        return []
    found: list[Match] = []
    with file.open(encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if text in line:
                found.append(Match(path=rel, line=number, text=line.rstrip("\n")[:300]))
                if len(found) >= limit:
                    break
    return found
