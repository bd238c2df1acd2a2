from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from mcp import Client

from tests.skills.conftest import text_of

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed"),
]


def _git(repo: Path, *args: str) -> None:
    env = {"GIT_AUTHOR_NAME": "Ann", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "Ann",
           "GIT_COMMITTER_EMAIL": "a@x", "PATH": "/usr/bin:/bin", "HOME": str(repo)}  # fmt: skip
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


@pytest.fixture
def repo(workspace: Path) -> Path:
    repo = workspace / "proj"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "a.txt").write_text("first\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "first commit")
    (repo / "a.txt").write_text("second\n")
    return repo


async def test_status_log_diff_show(client: Client, repo: Path) -> None:
    status = text_of(await client.call_tool("git_status", {"repo": "proj"}))
    assert "## main" in status and "M a.txt" in status
    log = text_of(await client.call_tool("git_log", {"repo": "proj"}))
    assert "Ann: first commit" in log
    diff = text_of(await client.call_tool("git_diff", {"repo": "proj"}))
    assert "-first" in diff and "+second" in diff
    show = text_of(await client.call_tool("git_show", {"repo": "proj", "revision": "HEAD"}))
    assert "first commit" in show and "+first" in show


async def test_option_injection_and_bad_revisions_are_refused(client: Client, repo: Path) -> None:
    result = await client.call_tool("git_show", {"repo": "proj", "revision": "--output=/tmp/x"})
    assert result.is_error
    result = await client.call_tool("git_show", {"repo": "proj", "revision": "nope"})
    assert result.is_error and "git show failed" in text_of(result)


async def test_repo_outside_workspace_is_refused(client: Client, repo: Path) -> None:
    result = await client.call_tool("git_status", {"repo": ".."})
    assert result.is_error and "workspace" in text_of(result)


async def test_git_tools_are_read_only(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools if t.name.startswith("git_")}
    assert set(tools) == {"git_status", "git_log", "git_diff", "git_show"}
    for tool in tools.values():
        assert tool.annotations and tool.annotations.read_only_hint is True
