"""Confine paths to a root folder: no ``..`` escapes, no absolute paths elsewhere, no symlinks out."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from skills._tool import SkillError


class OutsideWorkspace(SkillError):
    """The path would leave the caller's workspace."""


def inside_workspace(root: Path, path: str) -> Path:
    """Resolve ``path`` (relative to ``root``, or absolute inside it) or raise OutsideWorkspace.

    ``..`` components are refused outright rather than normalised, so a model cannot probe the
    layout above the root; the resolved result (symlinks followed) must stay under ``root``.
    """
    root = root.resolve()
    raw = path.strip() or "."
    if ".." in PurePosixPath(raw.replace("\\", "/")).parts:
        raise OutsideWorkspace(f"path {path!r} uses '..'; paths must stay inside the workspace")
    candidate = Path(raw)
    if candidate.is_absolute():
        if not candidate.is_relative_to(root):
            raise OutsideWorkspace(f"absolute path {path!r} is outside the workspace")
    else:
        candidate = root / candidate
    resolved = candidate.resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise OutsideWorkspace(f"path {path!r} resolves outside the workspace (symlink?)")
    return resolved


def display(root: Path, path: Path) -> str:
    """The path as the model should see it: relative to the root, POSIX style."""
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        return path.name
    return rel.as_posix() or "."
