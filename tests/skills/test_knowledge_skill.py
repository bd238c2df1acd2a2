"""The knowledge skill in process: incremental indexing by mtime and size, snippets, deletions."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from memory.knowledge import CHUNK_CHARS, MAX_CHUNK_CHARS, KnowledgeIndex, chunks_of
from tests.skills.conftest import text_of

pytestmark = pytest.mark.anyio

ALICE = {"omni/user_id": 111, "omni/is_admin": False}


async def search(client: Client, query: str, meta: Any = None, **args: Any) -> dict[str, Any]:
    result = await client.call_tool("search_knowledge", {"query": query, **args}, meta=meta)
    assert not result.is_error, text_of(result)
    data = result.structured_content
    assert isinstance(data, dict)
    return data


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def counts(data: dict[str, Any]) -> tuple[int, int, int, int]:
    index = data["index"]
    return index["files"], index["added"], index["updated"], index["removed"]


async def test_search_finds_passages_with_path_line_and_snippet(client: Client, workspace: Path) -> None:
    write(workspace / "notes" / "trip.md", "# Trip\n\nPacking list\n\nBring the blue umbrella to Lisbon.\n")
    write(workspace / "todo.txt", "call the plumber\n")
    data = await search(client, "umbrella for lisbon")
    assert counts(data) == (2, 2, 0, 0)
    [hit] = data["hits"]
    assert (hit["path"], hit["line"]) == ("notes/trip.md", 1)
    assert "**umbrella**" in hit["snippet"] and "**Lisbon**" in hit["snippet"]


async def test_only_changed_files_are_read_again_and_deleted_ones_disappear(
    client: Client, workspace: Path
) -> None:
    a = write(workspace / "a.md", "alpha apricot\n")
    b = write(workspace / "b.md", "bravo banana\n")
    assert counts(await search(client, "apricot")) == (2, 2, 0, 0)
    assert counts(await search(client, "apricot")) == (2, 0, 0, 0)  # nothing read again

    write(a, "alpha avocado, no longer the other fruit\n")  # size changes
    data = await search(client, "apricot")
    assert counts(data) == (2, 0, 1, 0) and data["hits"] == []
    assert [h["path"] for h in (await search(client, "avocado"))["hits"]] == ["a.md"]

    os.utime(b, ns=(b.stat().st_atime_ns, b.stat().st_mtime_ns + 5_000_000_000))  # same size, newer
    assert counts(await search(client, "banana")) == (2, 0, 1, 0)

    b.unlink()
    data = await search(client, "banana")
    assert counts(data) == (1, 0, 0, 1) and data["hits"] == []


async def test_only_text_files_outside_hidden_folders_are_indexed(client: Client, workspace: Path) -> None:
    for name in ("n.md", "n.markdown", "n.txt", "n.rst", "N.MD"):
        write(workspace / name, "zebra\n")
    for name in ("n.py", "n.json", ".git/n.md", ".hidden/n.txt", "node_modules/p/n.md", "n"):
        write(workspace / name, "zebra\n")
    (workspace / "big.md").write_bytes(b"zebra " * 200_000)  # over 1 MiB
    (workspace / "bin.txt").write_bytes(b"zebra\0\1\2")
    data = await search(client, "zebra", limit=50)
    assert sorted(h["path"] for h in data["hits"]) == ["N.MD", "n.markdown", "n.md", "n.rst", "n.txt"]
    assert data["index"]["skipped"] == 2


async def test_long_files_are_found_by_the_passage_that_matches(client: Client, workspace: Path) -> None:
    paragraphs = [f"Paragraph {i}. " + "filler words " * 30 for i in range(60)]
    paragraphs[41] = "The quarterly zeppelin budget is due in March."
    write(workspace / "long.md", "\n\n".join(paragraphs) + "\n")
    [hit] = (await search(client, "zeppelin budget"))["hits"]
    lines = (workspace / "long.md").read_text().splitlines()
    assert hit["line"] <= lines.index(paragraphs[41]) + 1 < hit["line"] + CHUNK_CHARS // 40


async def test_index_knowledge_reports_what_changed(client: Client, workspace: Path) -> None:
    write(workspace / "x.md", "one\n")
    result = await client.call_tool("index_knowledge", {})
    assert result.structured_content == {
        "files": 1,
        "added": 1,
        "updated": 0,
        "removed": 0,
        "skipped": 0,
        "truncated": False,
    }


async def test_a_non_admin_searches_only_their_folder(client: Client, workspace: Path) -> None:
    write(workspace / "admin.md", "walrus plans of the admin\n")
    write(workspace / "users" / "111" / "mine.md", "walrus plans of alice\n")
    write(workspace / "users" / "222" / "theirs.md", "walrus plans of bob\n")
    alice = await search(client, "walrus", meta=ALICE)
    assert [h["path"] for h in alice["hits"]] == ["mine.md"]
    ide = await search(client, "walrus")
    assert sorted(h["path"] for h in ide["hits"]) == ["admin.md", "users/111/mine.md", "users/222/theirs.md"]


@pytest.mark.parametrize("query", ['"', "*", "NEAR(", "a -b", "AND OR", "((", "🎉", "x" * 10_000, ""])
async def test_hostile_queries_answer_without_error(client: Client, workspace: Path, query: str) -> None:
    write(workspace / "q.md", 'quotes " and NEAR( and AND OR -- 🎉\n')
    assert isinstance((await search(client, query))["hits"], list)


async def test_the_index_lives_in_its_own_file_and_survives_restarts(
    connect: Callable[..., Client], workspace: Path, tmp_path: Path
) -> None:
    write(workspace / "keep.md", "persistent penguin\n")
    async with connect() as client:
        assert counts(await search(client, "penguin")) == (1, 1, 0, 0)
    assert (tmp_path / "data" / "knowledge.db").exists() and not (tmp_path / "data" / "omni.db").exists()
    async with connect() as client:
        data = await search(client, "penguin")
        assert counts(data) == (1, 0, 0, 0) and len(data["hits"]) == 1


async def test_a_damaged_or_foreign_index_file_is_rebuilt(
    connect: Callable[..., Client], workspace: Path, tmp_path: Path
) -> None:
    write(workspace / "keep.md", "resilient raccoon\n")
    index_file = tmp_path / "data" / "knowledge.db"
    index_file.parent.mkdir(parents=True)
    index_file.write_bytes(b"this is not a database" * 100)
    async with connect() as client:
        assert len((await search(client, "raccoon"))["hits"]) == 1
    with closing(sqlite3.connect(index_file)) as conn, conn:
        conn.execute("PRAGMA user_version=99")  # written by a newer omni
    async with connect() as client:
        data = await search(client, "raccoon")
        assert counts(data) == (1, 1, 0, 0) and len(data["hits"]) == 1


def test_chunks_cut_at_blank_lines_and_keep_their_first_line() -> None:
    text = "\n".join(f"line {i} " + "w " * 40 + ("\n" if i % 5 == 4 else "") for i in range(100))
    chunks = list(chunks_of(text))
    assert len(chunks) > 3 and chunks[0][0] == 1
    for line, body in chunks:
        assert text.splitlines()[line - 1].strip() == body.splitlines()[0].strip()
    minified = list(chunks_of("a\n" + "x" * 9_000 + "\nb"))  # one enormous line is cut
    assert [line for line, _ in minified] == [1, 2, 2]
    assert all(len(body) <= MAX_CHUNK_CHARS + 2 for _, body in minified)
    assert "".join(body for _, body in minified).count("x") == 9_000


def test_roots_never_see_each_others_rows(tmp_path: Path) -> None:
    from memory.knowledge import Document, Stamp

    with KnowledgeIndex(tmp_path / "k.db") as index:
        index.apply("users/1", [Document("a.md", Stamp(1, 1), "otter secret")])
        index.apply("users/2", [Document("a.md", Stamp(1, 1), "otter public")])
        assert [h.snippet for h in index.search("users/2", "otter", 10)] == ["**otter** public"]
        index.apply("users/1", [], removed={"a.md"})
        assert index.search("users/1", "otter", 10) == [] and index.count("users/2") == 1
