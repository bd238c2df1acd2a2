from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from mcp import Client
from mcp_types import TextContent, TextResourceContents

from mcp_server.loader import parse_skill_md, skill_folders
from mcp_server.server import build_server
from omni.settings import Settings
from tests.mcp_server.skillkit import write_broken_skills, write_skill

pytestmark = pytest.mark.anyio


@pytest.fixture
def extra(tmp_path: Path) -> Path:
    root = tmp_path / "extra"
    write_skill(root, "hello")
    return root


async def test_extra_skill_dirs_load_beside_builtins(
    make_settings: Callable[..., Settings], extra: Path
) -> None:
    server = build_server(make_settings(skills_dirs=(extra,)))
    async with Client(server, mode="legacy") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"greet", "read_file", "current_time", "fetch_url"} <= names
        result = await client.call_tool("greet", {"name": "Ann"})
        assert [c.text for c in result.content if isinstance(c, TextContent)] == ["hello Ann"]
        skill = await client.read_resource("skill://hello")
        assert (
            isinstance(skill.contents[0], TextResourceContents) and "Use it well." in skill.contents[0].text
        )


async def test_broken_skills_are_skipped_and_reported(
    make_settings: Callable[..., Settings], extra: Path, caplog: pytest.LogCaptureFixture
) -> None:
    expected = write_broken_skills(extra)
    with caplog.at_level(logging.ERROR, logger="mcp_server.loader"):
        server = build_server(make_settings(skills_dirs=(extra,)))
    status = server.registry.status()
    failed = {f["name"]: f for f in status["failed"]}
    assert set(failed) == set(expected)
    for name, fragment in expected.items():
        assert fragment in failed[name]["reason"], (name, failed[name])
        assert str(extra / name) in failed[name]["file"]
        assert any(name in r.getMessage() and fragment in r.getMessage() for r in caplog.records), name
    assert "hello" in status["skills"] and "files" in status["skills"]
    async with Client(server, mode="legacy") as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert "web_two" not in tools and "oops" not in tools
        content = (await client.read_resource("omni://status")).contents[0]
        assert isinstance(content, TextResourceContents)
        assert {f["name"] for f in json.loads(content.text)["failed"]} == set(expected)


async def test_a_raising_tool_is_an_error_result_and_the_server_goes_on(
    make_settings: Callable[..., Settings], extra: Path
) -> None:
    async with Client(build_server(make_settings(skills_dirs=(extra,))), mode="legacy") as client:
        result = await client.call_tool("boom", {})
        assert result.is_error
        texts = [c.text for c in result.content if isinstance(c, TextContent)]
        assert texts == ["Error executing tool boom: RuntimeError: kaboom"]
        bad_args = await client.call_tool("greet", {})
        assert bad_args.is_error
        assert not (await client.call_tool("greet", {"name": "x"})).is_error


async def test_capabilities_and_prompts_and_completion(make_settings: Callable[..., Settings]) -> None:
    async with Client(build_server(make_settings()), mode="legacy") as client:
        caps = client.server_capabilities
        assert caps.tools and caps.tools.list_changed
        assert caps.resources and caps.resources.list_changed
        assert caps.prompts and caps.prompts.list_changed
        assert caps.logging is not None and caps.completions is not None
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["skill://{name}"]
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert {"review_changes", "time_in"} <= prompts
        prompt = await client.get_prompt("time_in", {"timezone": "Europe/Rome"})
        assert "Europe/Rome" in str(prompt.messages[0].content)


def test_skill_md_parsing(tmp_path: Path) -> None:
    folder = write_skill(tmp_path, "notes", meta="name: notes\ndescription: Notes.\nlicense: MIT")
    meta, text = parse_skill_md(folder / "SKILL.md")
    assert (meta.name, meta.description) == ("notes", "Notes.") and text.startswith("---")
    (tmp_path / "_private").mkdir()
    (tmp_path / "nomd").mkdir()
    assert skill_folders(tmp_path) == [folder]


def test_builtin_tool_names_match_the_contract(make_settings: Callable[..., Settings]) -> None:
    import re

    server = build_server(make_settings(shell_enabled=True))
    names = [t.name for t in server._tool_manager.list_tools()]
    assert len(names) == len(set(names)) == 22
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", n) for n in names)


def test_start_up_imports_no_http_client_or_html_converter() -> None:
    """Skills import what only a call needs (httpx, html2text) inside the call: start stays lean."""
    code = (
        "import sys; from omni.settings import load_settings; from mcp_server.server import build_server; "
        "build_server(load_settings()); print(sorted({'httpx', 'html2text'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
