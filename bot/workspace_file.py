"""Reading one file of a Telegram user's workspace folder for ``send_file``, and nothing else.

The same rule as the skills server's files skill (SECURITY.md): a non-admin reaches only
``WORKSPACE/users/<id>/``, an admin the whole workspace. The path is opened one component at a
time from a descriptor of the workspace with ``O_NOFOLLOW``, so a symlink anywhere on the way
(to a folder or to the file) is refused, and what was checked is what is read, with no window
for a swap. ``..`` and absolute paths are refused before anything is opened; the file is
checked with ``fstat`` (a FIFO or a device is never read) and its size capped.

The bot cannot import ``skills._fs`` (tests/test_layers.py: bot -> agent -> memory), hence
this small copy of its walk, limited to reading.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class FileRefused(Exception):
    """Why a path cannot be sent, in words for the model (and, through it, the user)."""


@dataclass(frozen=True, slots=True)
class WorkspaceFile:
    name: str
    data: bytes


def parts_of(path: str) -> list[str]:
    """The components of a relative path; absolute paths and ``..`` are refused."""
    text = path.strip().replace("\\", "/")
    if PurePosixPath(text).is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise FileRefused(f"{path!r} is absolute; give a path relative to your workspace folder")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise FileRefused(f"{path!r} leads outside your workspace folder ('..' is not allowed)")
    if not parts:
        raise FileRefused("name a file inside your workspace folder")
    return parts


def read_file(workspace: Path, user_id: int | None, is_admin: bool, path: str, limit: int) -> WorkspaceFile:
    """The file ``path`` of the caller's folder, at most ``limit`` bytes. Blocking: run it in a
    worker thread."""
    parts = parts_of(path)
    below = [] if is_admin else ["users", str(user_id)]
    fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the operator's folder
    try:
        for name in [*below, *parts[:-1]]:
            child = _descend(fd, name, path)
            os.close(fd)
            fd = child
        try:
            file_fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
        except OSError as exc:
            raise _refusal(exc, path) from exc
    finally:
        os.close(fd)
    with os.fdopen(file_fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"{path!r} is not a regular file")
        if info.st_size == 0:
            raise FileRefused(f"{path!r} is empty; Telegram does not send empty files")
        if info.st_size > limit:
            raise FileRefused(f"{path!r} is {info.st_size:,} bytes; Telegram takes at most {limit:,}")
        data = file.read(limit + 1)
    if len(data) > limit:  # it grew while we read it
        raise FileRefused(f"{path!r} is over {limit:,} bytes")
    return WorkspaceFile(parts[-1], data)


def _descend(fd: int, name: str, path: str) -> int:
    """The folder ``name`` inside ``fd``, never through a symlink."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        raise _refusal(exc, path) from exc


def _refusal(exc: OSError, path: str) -> FileRefused:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return FileRefused(f"{path!r} goes through a symlink or a non-folder; symlinks are not followed")
    if exc.errno == errno.ENOENT:
        return FileRefused(f"{path!r} does not exist in your workspace folder")
    if exc.errno == errno.EISDIR:
        return FileRefused(f"{path!r} is a folder; send one file at a time")
    return FileRefused(f"{path!r} cannot be opened ({exc.strerror or exc})")
