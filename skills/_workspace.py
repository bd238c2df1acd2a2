"""Confine paths to a root folder: no ``..`` escapes, no absolute paths elsewhere, no symlinks out."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from skills._tool import SkillError


class OutsideWorkspace(SkillError):
    """The path would leave the caller's workspace."""


def parts_of(root: Path, path: str) -> tuple[str, ...]:
    """The components of ``path`` below ``root``, checked without touching the file system.

    ``..`` components are refused outright rather than normalised, so a model cannot probe the
    layout above the root; an absolute path must name ``root`` (as given or resolved) or lie
    under it. The empty tuple is the root itself.
    """
    raw = path.strip() or "."
    if "\0" in raw:
        raise OutsideWorkspace(f"path {path!r} contains a NUL character")
    if ".." in PurePosixPath(raw.replace("\\", "/")).parts:
        raise OutsideWorkspace(f"path {path!r} uses '..'; paths must stay inside the workspace")
    candidate = PurePosixPath(raw)
    if candidate.is_absolute():
        for prefix in dict.fromkeys((root.absolute(), root.resolve())):
            if candidate.is_relative_to(prefix):
                return candidate.relative_to(prefix).parts
        raise OutsideWorkspace(f"absolute path {path!r} is outside the workspace")
    return tuple(part for part in candidate.parts if part != ".")


def inside_workspace(root: Path, path: str) -> Path:
    """Resolve ``path`` (relative to ``root``, or absolute inside it) or raise OutsideWorkspace.

    The resolved result (symlinks followed) must stay under ``root``. This suits handing a folder
    to a subprocess; the files skill opens paths through descriptors instead (skills/_fs.py),
    since a symlink swapped in after this check would still be followed.
    """
    parts = parts_of(root, path)
    root = root.resolve()
    resolved = root.joinpath(*parts).resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise OutsideWorkspace(f"path {path!r} resolves outside the workspace (symlink?)")
    return resolved
