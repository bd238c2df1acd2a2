"""Race-free file access below a root folder, through directory descriptors.

A path is opened one component at a time, each relative to the descriptor of the folder above
it and with ``O_NOFOLLOW``, so the folder that was checked is the folder that is used: swapping a
component for a symlink half-way through makes the operation fail instead of leading outside.
Symlinks are never followed; operations that name a link itself (list, delete, move) act on
the link. Files are opened with ``O_NONBLOCK`` and checked with ``fstat``, so a FIFO or a device
is refused instead of blocking the worker thread.

Functions here are blocking; callers run them in a worker thread.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Literal

from skills._tool import SkillError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

Kind = Literal["file", "dir", "symlink", "other"]


class Missing(SkillError):
    """The path (or a folder on the way to it) does not exist."""


def shown(parts: Sequence[str]) -> str:
    """A path as the model should see it: relative to the root, POSIX style."""
    return "/".join(parts) or "."


def kind_of(mode: int) -> Kind:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    """The entry ``name`` itself (a link is not followed), or None if it does not exist."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def refusal(err: OSError, where: str) -> SkillError:
    """One line the model can act on, for an OSError met at ``where``."""
    path = repr(where)
    messages = {
        errno.ENOENT: f"{path} does not exist",
        errno.EEXIST: f"{path} already exists",
        errno.EISDIR: f"{path} is a folder",
        errno.ENOTDIR: f"{path} is not a folder",
        errno.ENOTEMPTY: f"{path} is a folder that is not empty",
        errno.ELOOP: symlink_refused(where),
        errno.ENXIO: not_regular(where),
        errno.EACCES: f"permission denied on {path}",
        errno.EPERM: f"permission denied on {path}",
        errno.ENOSPC: f"no space left on the device for {path}",
        errno.ENAMETOOLONG: f"a name in {path} is too long",
        errno.EXDEV: f"{path} cannot be moved across file systems",
    }
    message = messages.get(err.errno or 0, f"{path}: {err.strerror or err}")
    return Missing(message) if err.errno == errno.ENOENT else SkillError(message)


def symlink_refused(where: str) -> str:
    return f"{where!r} is a symlink; symlinks are not followed (they could lead outside the workspace)"


def not_regular(where: str) -> str:
    return f"{where!r} is not a regular file (a FIFO, device or socket); refusing to open it"


@contextmanager
def open_root(workspace: Path, root: Path) -> Iterator[int]:
    """A descriptor for the caller's ``root``, a folder at or below ``workspace``."""
    # The configured workspace is trusted (it may itself be a symlink); what lies below it is not.
    fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with open_dir(fd, root.relative_to(workspace).parts) as root_fd:
            yield root_fd
    finally:
        os.close(fd)


@contextmanager
def open_dir(base: int, parts: Sequence[str], *, create: bool = False) -> Iterator[int]:
    """A descriptor for the folder ``parts`` below ``base``; ``create`` makes missing folders."""
    fd = os.dup(base)
    try:
        for depth, name in enumerate(parts):
            try:
                child = _child_dir(fd, name, create)
            except OSError as err:
                raise _dir_refusal(err, fd, name, shown(parts[: depth + 1])) from None
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


@contextmanager
def open_parent(base: int, parts: Sequence[str], *, create: bool = False) -> Iterator[tuple[int, str]]:
    """The descriptor of the folder holding ``parts`` (not empty) and the last name in it."""
    with open_dir(base, parts[:-1], create=create) as fd:
        yield fd, parts[-1]


@contextmanager
def open_regular(dir_fd: int, name: str, flags: int, where: str) -> Iterator[int]:
    """Open the regular file ``name`` in ``dir_fd``; refuse folders, links, FIFOs and devices.

    The ``lstat`` first keeps us from opening a device at all (opening some has side effects);
    the ``fstat`` after catches an entry swapped in between.
    """
    st = lstat_at(dir_fd, name)
    if st is None and not flags & os.O_CREAT:
        raise Missing(f"{where!r} is not a file: it does not exist")
    if st is not None:
        _require_regular(st.st_mode, where)
    try:
        fd = os.open(name, flags | FILE_FLAGS, 0o666, dir_fd=dir_fd)
    except OSError as err:
        raise refusal(err, where) from None
    try:
        _require_regular(os.fstat(fd).st_mode, where)
        yield fd
    finally:
        os.close(fd)


def read_up_to(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    while limit > 0 and (chunk := os.read(fd, min(limit, 1 << 20))):
        chunks.append(chunk)
        limit -= len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def usage(root_fd: int) -> int:
    """Bytes held by the regular files below ``root_fd`` (links not followed, never counted)."""
    total = 0
    for _, _, files, dir_fd in walk(root_fd):
        for name in files:
            with suppress(OSError):  # removed while we looked: it no longer counts
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    total += st.st_size
    return total


def walk(dir_fd: int) -> Generator[tuple[str, list[str], list[str], int]]:
    """``os.fwalk`` below ``dir_fd``, links not followed; ``close()`` it to release its descriptors."""
    yield from os.fwalk(".", dir_fd=dir_fd)


def _child_dir(fd: int, name: str, create: bool) -> int:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise
    with suppress(FileExistsError):  # made by someone else meanwhile: the open below checks it
        os.mkdir(name, 0o777, dir_fd=fd)
    return os.open(name, DIR_FLAGS, dir_fd=fd)


def _dir_refusal(err: OSError, fd: int, name: str, where: str) -> SkillError:
    # O_DIRECTORY|O_NOFOLLOW on a symlink fails with ENOTDIR (or ELOOP): say which it was.
    if err.errno in (errno.ENOTDIR, errno.ELOOP):
        with suppress(OSError):
            if stat.S_ISLNK(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                return SkillError(symlink_refused(where))
    return refusal(err, where)


def _require_regular(mode: int, where: str) -> None:
    kind = kind_of(mode)
    if kind == "dir":
        raise SkillError(f"{where!r} is a folder, not a file")
    if kind == "symlink":
        raise SkillError(symlink_refused(where))
    if kind == "other":
        raise SkillError(not_regular(where))
