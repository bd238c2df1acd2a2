"""Files users send the bot, kept in their own folder: ``WORKSPACE/users/<id>/uploads/``.

That is where the files skill lets a non-admin read (SECURITY.md), so the agent can open what
was sent; /forget all deletes the folder. Names are made safe here and writes never follow a
link out of the workspace.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path, PurePosixPath

from omni.errors import OmniError

UPLOADS = "uploads"
MAX_NAME = 100  # characters of a saved file's name, extension kept
# Letters, digits, "_", "-", "." and spaces; anything else (separators, control and quote
# characters) becomes "_".
_UNSAFE = re.compile(r"[^\w.\- ]+")


class UploadRefused(OmniError):
    """A file the bot will not keep; ``user_message`` says why."""


def user_folder(workspace: Path, user_id: int) -> Path:
    """A user's folder, the root the files skill gives a non-admin."""
    return workspace / "users" / str(user_id)


def safe_name(name: str | None, default: str) -> str:
    """One path component from a client's file name: no folders, no leading dots, bounded."""
    base = PurePosixPath((name or "").replace("\\", "/")).name
    base = _UNSAFE.sub("_", base).strip(" ._")
    if not base:
        return default
    stem, dot, ext = base.rpartition(".")
    if dot and stem and len(ext) <= 10:
        return f"{stem[: MAX_NAME - len(ext) - 1]}.{ext}"
    return base[:MAX_NAME]


def _used_bytes(folder: Path) -> int:
    total = 0
    for top, _dirs, files in os.walk(folder):  # links are not followed
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
            except FileNotFoundError:
                continue
    return total


def save(workspace: Path, user_id: int, name: str, data: bytes, *, quota: int | None) -> Path:
    """Write ``data`` as ``uploads/<name>`` in the user's folder (replacing a file of that name);
    returns the path relative to the user's folder. ``quota`` bounds the whole folder. Blocking:
    call it in a thread."""
    folder = user_folder(workspace, user_id)
    uploads = folder / UPLOADS
    uploads.mkdir(parents=True, exist_ok=True)
    if not uploads.resolve().is_relative_to(workspace.resolve()):
        raise UploadRefused(
            f"{uploads} leads out of the workspace", user_message="I could not save that file."
        )
    if quota is not None and _used_bytes(folder) + len(data) > quota:
        raise UploadRefused(
            "quota",
            user_message=f"Your folder is full ({quota // (1024 * 1024)} MiB); delete some files first.",
        )
    target = uploads / name
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW  # never write through a link
    fd = os.open(target, flags, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return target.relative_to(folder)


def forget(workspace: Path, user_id: int) -> None:
    """Delete everything the user sent (for /forget all). Blocking: call it in a thread."""
    uploads = user_folder(workspace, user_id) / UPLOADS
    if uploads.is_symlink():
        uploads.unlink()  # the link, not what it points at
    elif uploads.exists():
        shutil.rmtree(uploads)
