"""The files skill under attack (issue 12), through the real ``omni mcp`` over stdio."""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession

from tests.skills.conftest import ADMIN, NON_ADMIN, RealServer, text_of

pytestmark = pytest.mark.anyio

LIBC = ctypes.CDLL(None, use_errno=True)

META: Any = NON_ADMIN


async def call(session: ClientSession, tool: str, meta: Any = NON_ADMIN, **args: Any) -> tuple[bool, str]:
    result = await session.call_tool(tool, args, meta=meta)
    return result.is_error, text_of(result)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "x.txt").write_text("SECRET")
    return folder


def exchange(a: Path, b: Path) -> None:
    """Swap two names atomically (Linux ``renameat2(RENAME_EXCHANGE)``): neither is ever missing."""
    at_fdcwd, rename_exchange = -100, 2
    if LIBC.renameat2(at_fdcwd, bytes(a), at_fdcwd, bytes(b), rename_exchange) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


@contextmanager
def flipping(root: Path, outside: Path) -> Iterator[None]:
    """Keep swapping ``root/flip`` between a real folder and a symlink to ``outside``."""
    flip, other = root / "flip", root / "other"
    other.symlink_to(outside)
    stop = threading.Event()

    def flipper() -> None:
        while not stop.is_set():
            exchange(flip, other)
            time.sleep(0.001)

    thread = threading.Thread(target=flipper, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


async def test_a_folder_flipped_to_a_symlink_never_leaks_or_receives_outside_files(
    real_server: RealServer, root: Path, outside: Path
) -> None:
    (root / "flip").mkdir()
    (root / "flip" / "x.txt").write_text("inside")
    texts: list[str] = []
    async with real_server() as session:
        with flipping(root, outside):
            for i in range(200):
                texts.append((await call(session, "read_file", path="flip/x.txt"))[1])
                await call(session, "write_file", path=f"flip/w{i % 3}.txt", content="w")
                await call(session, "append_file", path="flip/a.txt", content="a")
    assert not [t for t in texts if "SECRET" in t]
    assert "inside" in texts  # the race was really run against working reads
    assert os.listdir(outside) == ["x.txt"]
    assert (outside / "x.txt").read_text() == "SECRET"


async def test_deleting_a_symlink_deletes_the_link_not_its_target(
    real_server: RealServer, root: Path, outside: Path
) -> None:
    (root / "project").mkdir()
    (root / "project" / "main.py").write_text("print()")
    (root / "shortcut").symlink_to("project")
    (root / "out").symlink_to(outside / "x.txt")
    async with real_server() as session:
        err, text = await call(session, "list_files")
        assert not err and '"symlink"' in text
        err, text = await call(session, "read_file", path="shortcut/main.py")
        assert err and "symlink" in text
        for link in ("shortcut", "out"):
            err, text = await call(session, "delete_file", path=link, recursive=True)
            assert (err, text) == (False, f"deleted {link}")
    assert not (root / "shortcut").is_symlink() and not (root / "out").is_symlink()
    assert (root / "project" / "main.py").read_text() == "print()"
    assert (outside / "x.txt").read_text() == "SECRET"


async def test_writes_are_capped_and_non_admins_have_a_quota(real_server: RealServer, root: Path) -> None:
    async with real_server(OMNI_FILES_MAX_WRITE_BYTES="50000", OMNI_FILES_QUOTA_BYTES="65536") as session:
        err, text = await call(session, "write_file", path="big.txt", content="x" * 50001)
        assert err and "50000" in text and "\n" not in text
        assert not (root / "big.txt").exists()
        assert not (await call(session, "write_file", path="a.txt", content="a" * 40000))[0]
        err, text = await call(session, "write_file", path="sub/b.txt", content="b" * 30000)
        assert err and "quota" in text and not (root / "sub").exists()
        err, text = await call(session, "append_file", path="a.txt", content="a" * 30000)
        assert err and "quota" in text
        assert not (await call(session, "write_file", path="a.txt", content="c" * 45000))[0]  # replaces
        assert not (await call(session, "write_file", path="b.txt", content="b" * 20000))[0]
        err, text = await call(session, "edit_file", path="b.txt", find="b", replace="bbb", replace_all=True)
        assert err and "50000" in text
        assert (root / "b.txt").read_text() == "b" * 20000
        # Admins have no quota, only the per-write cap.
        assert not (await call(session, "write_file", ADMIN, path="admin.txt", content="x" * 50000))[0]
        assert not (await call(session, "append_file", ADMIN, path="admin.txt", content="x" * 50000))[0]


async def test_a_huge_listing_is_capped_and_says_so(real_server: RealServer, root: Path) -> None:
    (root / "file-00000.txt").touch()
    for i in range(1, 5000):  # hard links: creating 5,000 inodes would take seconds
        os.link(root / "file-00000.txt", root / f"file-{i:05}.txt")
    async with real_server() as session:
        started = time.monotonic()
        result = await session.call_tool("list_files", {}, meta=META)
        elapsed = time.monotonic() - started
    data = result.structured_content
    assert not result.is_error and isinstance(data, dict)
    assert data["truncated"] is True and data["total"] == 5000
    assert len(data["entries"]) == 1000 and data["entries"][0]["name"] == "file-00000.txt"
    assert len(text_of(result)) < 256 * 1024 and elapsed < 2


async def test_fifos_are_skipped_by_search_and_refused_by_reads_and_writes(
    real_server: RealServer, root: Path
) -> None:
    (root / "a.txt").write_text("needle\n")
    os.mkfifo(root / "pipe")
    os.mkfifo(root / "pipe.txt")
    async with real_server() as session:
        with anyio.fail_after(10):
            result = await session.call_tool("search_files", {"text": "needle"}, meta=META)
            assert result.structured_content == {
                "matches": [{"path": "a.txt", "line": 1, "text": "needle"}],
                "truncated": False,
            }
            result = await session.call_tool("search_files", {"pattern": "pipe*"}, meta=META)
            assert result.structured_content == {"matches": [], "truncated": False}
            attempts: list[tuple[str, dict[str, Any]]] = [
                ("read_file", {}),
                ("append_file", {"content": "x"}),
                ("write_file", {"content": "x"}),
                ("edit_file", {"find": "a", "replace": "b"}),
            ]
            for tool, args in attempts:
                err, text = await call(session, tool, path="pipe", **args)
                assert err and "not a regular file" in text, (tool, text)


async def test_non_admins_may_not_touch_git_folders(
    real_server: RealServer, root: Path, workspace: Path
) -> None:
    (root / "r" / ".git").mkdir(parents=True)
    (root / "r" / ".git" / "config").write_text("[core]\n")
    (root / "notes.txt").write_text("x")
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("write_file", {"path": "r/.git/config", "content": "[core]\nfsmonitor = evil\n"}),
        ("write_file", {"path": "r/.GIT/x", "content": "x"}),
        ("append_file", {"path": "r/.git/config", "content": "x"}),
        ("edit_file", {"path": "r/.git/config", "find": "core", "replace": "x"}),
        ("move_file", {"source": "notes.txt", "destination": "r/.Git/config"}),
        ("move_file", {"source": "r/.git", "destination": "elsewhere"}),
        ("delete_file", {"path": "r/.git/config"}),
    ]
    async with real_server() as session:
        for tool, args in attempts:
            err, text = await call(session, tool, **args)
            assert err and ".git" in text, (tool, text)
        assert (root / "r" / ".git" / "config").read_text() == "[core]\n"
        assert not (root / "r" / ".GIT" / "x").exists() and (root / "notes.txt").exists()
        assert not (await call(session, "read_file", path="r/.git/config"))[0]
        err, _ = await call(session, "write_file", ADMIN, path="users/4242/r/.git/config", content="ok")
        assert not err and (root / "r" / ".git" / "config").read_text() == "ok"
