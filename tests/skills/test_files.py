from __future__ import annotations

import os
from pathlib import Path

import pytest
from mcp import Client

from tests.skills.conftest import text_of

pytestmark = pytest.mark.anyio


async def call(client: Client, tool: str, **args: object) -> tuple[bool, str, object]:
    result = await client.call_tool(tool, args)
    return result.is_error, text_of(result), result.structured_content


async def test_workspace_is_created_and_write_read_roundtrip(client: Client, workspace: Path) -> None:
    err, text, _ = await call(client, "write_file", path="notes/todo.md", content="milk\n")
    assert not err and "notes/todo.md" in text
    assert (workspace / "notes" / "todo.md").read_text() == "milk\n"
    err, text, _ = await call(client, "read_file", path="notes/todo.md")
    assert (err, text) == (False, "milk\n")


async def test_append_edit_move_delete(client: Client, workspace: Path) -> None:
    await call(client, "write_file", path="a.txt", content="one two two")
    await call(client, "append_file", path="a.txt", content="\nthree")
    err, text, _ = await call(client, "edit_file", path="a.txt", find="two", replace="2")
    assert err and "2 times" in text
    err, _, _ = await call(client, "edit_file", path="a.txt", find="two", replace="2", replace_all=True)
    assert not err and (workspace / "a.txt").read_text() == "one 2 2\nthree"
    err, text, _ = await call(client, "edit_file", path="a.txt", find="absent", replace="x")
    assert err and "not found" in text
    err, _, _ = await call(client, "move_file", source="a.txt", destination="sub/b.txt")
    assert not err and (workspace / "sub" / "b.txt").exists() and not (workspace / "a.txt").exists()
    err, text, _ = await call(client, "delete_file", path="sub")
    assert err and "not empty" in text
    err, _, _ = await call(client, "delete_file", path="sub", recursive=True)
    assert not err and not (workspace / "sub").exists()


async def test_list_and_search_return_structured_data(client: Client, workspace: Path) -> None:
    (workspace / "docs").mkdir(parents=True)
    (workspace / "docs" / "a.md").write_text("hello world\nbye\n")
    (workspace / "b.py").write_text("print('hello')\n")
    err, _, data = await call(client, "list_files")
    assert not err and data == {
        "path": ".",
        "entries": [{"name": "b.py", "type": "file", "size": 15}, {"name": "docs", "type": "dir", "size": 0}],
        "total": 2,
        "truncated": False,
    }
    _, _, data = await call(client, "search_files", pattern="**/*.md")
    assert data == {"matches": [{"path": "docs/a.md", "line": None, "text": None}], "truncated": False}
    _, _, data = await call(client, "search_files", text="hello")
    assert isinstance(data, dict)
    assert [(m["path"], m["line"]) for m in data["matches"]] == [("b.py", 1), ("docs/a.md", 1)]


async def test_read_is_capped_with_a_truncation_note(client: Client, workspace: Path) -> None:
    os.makedirs(workspace, exist_ok=True)
    (workspace / "big.txt").write_text("x" * 5000)
    err, text, _ = await call(client, "read_file", path="big.txt", max_bytes=100)
    assert not err and text.startswith("x" * 100) and "[truncated: showed 100 of 5000 bytes]" in text


@pytest.mark.parametrize("path", ["../outside.txt", "a/../../outside.txt", "/etc/passwd", "/tmp"])
async def test_paths_outside_the_workspace_are_refused(client: Client, path: str) -> None:
    for tool, args in (("read_file", {}), ("write_file", {"content": "x"}), ("delete_file", {})):
        err, text, _ = await call(client, tool, path=path, **args)
        assert err and "workspace" in text and "Traceback" not in text
        assert "\n" not in text


async def test_symlink_out_of_the_workspace_is_refused(
    client: Client, workspace: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    os.makedirs(workspace, exist_ok=True)
    os.symlink(secret, workspace / "link.txt")
    os.symlink(tmp_path, workspace / "linkdir")
    for path in ("link.txt", "linkdir/secret.txt"):
        err, text, _ = await call(client, "read_file", path=path)
        assert err and "outside the workspace" in text and "top secret" not in text
    err, _, _ = await call(client, "write_file", path="linkdir/new.txt", content="x")
    assert err and not (tmp_path / "new.txt").exists()


async def test_absolute_path_inside_the_workspace_is_fine(client: Client, workspace: Path) -> None:
    await call(client, "write_file", path="in.txt", content="ok")
    err, text, _ = await call(client, "read_file", path=str(workspace / "in.txt"))
    assert (err, text) == (False, "ok")


async def test_missing_file_is_a_clear_error(client: Client) -> None:
    err, text, _ = await call(client, "read_file", path="nope.txt")
    assert err and "'nope.txt' is not a file" in text


async def test_edge_cases_give_one_line_errors(client: Client, workspace: Path) -> None:
    await call(client, "write_file", path="a/b.txt", content="x")
    await call(client, "write_file", path="dest/keep.txt", content="k")
    cases = [
        ("write_file", {"path": "a", "content": "x"}, "is a folder"),
        ("write_file", {"path": ".", "content": "x"}, "is a folder"),
        ("read_file", {"path": "a"}, "is a folder"),
        ("read_file", {"path": "nowhere/x.txt"}, "'nowhere' does not exist"),
        ("list_files", {"path": "a/b.txt"}, "is not a folder"),
        ("move_file", {"source": "a", "destination": "a/inner"}, "into itself"),
        ("move_file", {"source": "dest/keep.txt", "destination": "a/b.txt"}, "already exists"),
        ("move_file", {"source": "missing", "destination": "x"}, "does not exist"),
        ("delete_file", {"path": "."}, "workspace root"),
    ]
    for tool, args, expected in cases:
        err, text, _ = await call(client, tool, **args)
        assert err and expected in text and "\n" not in text, (tool, args, text)
    err, text, _ = await call(client, "move_file", source="a/b.txt", destination="dest")
    assert (err, text) == (False, "moved a/b.txt to dest/b.txt")
    assert (workspace / "dest" / "b.txt").read_text() == "x"
