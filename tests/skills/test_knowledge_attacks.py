"""The knowledge skill under attack, through the real ``omni mcp`` over stdio: it indexes only
regular text files inside the caller's root, never follows a link, never opens a FIFO, and
forgets deleted files."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession

from tests.skills.conftest import ADMIN, NON_ADMIN, RealServer, text_of
from tests.skills.test_files_attacks import flipping

pytestmark = pytest.mark.anyio

SECRET = "okapi"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.md").write_text(f"the {SECRET} is outside\n")
    return folder


async def search(session: ClientSession, query: str, meta: Any = NON_ADMIN) -> dict[str, Any]:
    result = await session.call_tool("search_knowledge", {"query": query, "limit": 50}, meta=meta)
    assert not result.is_error, text_of(result)
    data = result.structured_content
    assert isinstance(data, dict)
    return data


def paths(data: dict[str, Any]) -> list[str]:
    return sorted(hit["path"] for hit in data["hits"])


async def test_links_never_lead_the_index_outside_the_callers_root(
    real_server: RealServer, root: Path, outside: Path, workspace: Path
) -> None:
    other = workspace / "users" / "5151"
    other.mkdir(parents=True)
    (other / "diary.md").write_text(f"another user's {SECRET}\n")
    (workspace / "admin.md").write_text(f"the admin's {SECRET}\n")
    (root / "mine.md").write_text(f"my own {SECRET}\n")
    (root / "dir-link").symlink_to(outside)
    (root / "file-link.md").symlink_to(outside / "secret.md")
    (root / "neighbour").symlink_to(other)
    (root / "up.md").symlink_to(workspace / "admin.md")
    async with real_server() as s:
        data = await search(s, SECRET)
        assert paths(data) == ["mine.md"]
        assert data["index"]["files"] == 1
        assert all("outside" not in h["snippet"] and "another" not in h["snippet"] for h in data["hits"])


async def test_what_an_admin_indexed_stays_out_of_a_non_admins_search(
    real_server: RealServer, root: Path, workspace: Path
) -> None:
    (workspace / "users" / "5151").mkdir(parents=True)
    (workspace / "users" / "5151" / "diary.md").write_text(f"another user's {SECRET}\n")
    (root / "mine.md").write_text("nothing here\n")
    async with real_server() as s:
        admin = await search(s, SECRET, ADMIN)
        assert paths(admin) == ["users/5151/diary.md"]
        assert paths(await search(s, SECRET)) == []
        assert paths(await search(s, "users 5151 diary")) == []


async def test_a_fifo_or_device_named_like_a_note_is_skipped_without_blocking(
    real_server: RealServer, root: Path
) -> None:
    os.mkfifo(root / "pipe.md")
    (root / "dev.txt").symlink_to("/dev/zero")
    (root / "note.md").write_text(f"a real {SECRET}\n")
    async with real_server(OMNI_TOOL_TIMEOUT="10") as s:
        start = time.monotonic()
        data = await search(s, SECRET)
        assert time.monotonic() - start < 5
        assert paths(data) == ["note.md"] and data["index"]["files"] == 1


async def test_a_folder_flipped_to_a_symlink_never_brings_outside_text_in(
    real_server: RealServer, root: Path, outside: Path
) -> None:
    (root / "flip").mkdir()
    (root / "flip" / "inside.md").write_text("an inside note\n")
    async with real_server() as s:
        with flipping(root, outside):
            for _ in range(60):
                data = await search(s, SECRET)
                assert data["hits"] == [], data


async def test_deleted_files_disappear_from_search(real_server: RealServer, root: Path) -> None:
    (root / "a.md").write_text(f"{SECRET} one\n")
    (root / "sub").mkdir()
    (root / "sub" / "b.md").write_text(f"{SECRET} two\n")
    async with real_server() as s:
        assert paths(await search(s, SECRET)) == ["a.md", "sub/b.md"]
        (root / "a.md").unlink()
        (root / "sub" / "b.md").rename(root / "sub" / "b.bin")  # no longer a text file
        data = await search(s, SECRET)
        assert data["hits"] == [] and data["index"]["removed"] == 2 and data["index"]["files"] == 0


async def test_hostile_queries_never_raise(real_server: RealServer, root: Path) -> None:
    (root / "q.md").write_text('quotes " NEAR( AND OR -- 🎉 okapi\n')
    async with real_server() as s:
        for query in ['"', "*", "NEAR(okapi, x)", "-okapi", "AND OR", "((", "🎉", "okapi:*", "k" * 10_000]:
            assert isinstance((await search(s, query))["hits"], list), query
        assert paths(await search(s, 'NEAR( "okapi')) == ["q.md"]
