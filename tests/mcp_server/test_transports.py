"""The real ``omni mcp`` over stdio, Streamable HTTP and SSE, driven by the SDK's client."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.session import IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent, ToolListChangedNotification

from tests.mcp_server.conftest import StartServer
from tests.mcp_server.skillkit import GOOD_TOOLS, write_broken_skills

pytestmark = pytest.mark.anyio

NEW_TOOL = '''

async def wave(times: int = 1) -> str:
    """Wave a few times."""
    return "wave " * times
'''


class ListChanged:
    """A message handler that records tools/list_changed notifications."""

    def __init__(self) -> None:
        self.event = anyio.Event()

    async def __call__(self, message: IncomingMessage) -> None:
        if isinstance(message, ToolListChangedNotification):
            self.event.set()


async def exercise(session: ClientSession, changed: ListChanged, extra_dir: Path) -> None:
    """initialize -> list -> call -> edit a skill -> list_changed -> the new tool works."""
    init = await session.initialize()
    assert init.server_info.name == "omni-skills"
    assert init.capabilities.tools and init.capabilities.tools.list_changed
    names = {t.name for t in (await session.list_tools()).tools}
    assert {"greet", "read_file", "git_status", "fetch_url", "current_time"} <= names
    assert "wave" not in names
    result = await session.call_tool("greet", {"name": "Ann"})
    assert [c.text for c in result.content if isinstance(c, TextContent)] == ["hello Ann"]
    (extra_dir / "hello" / "tools.py").write_text(GOOD_TOOLS + NEW_TOOL)
    with anyio.fail_after(5):
        await changed.event.wait()
    assert "wave" in {t.name for t in (await session.list_tools()).tools}
    waved = await session.call_tool("wave", {"times": 2})
    assert [c.text for c in waved.content if isinstance(c, TextContent)] == ["wave wave "]


async def test_stdio_end_to_end_with_hot_reload(
    omni_cmd: list[str], server_env: dict[str, str], extra_dir: Path
) -> None:
    params = StdioServerParameters(command=omni_cmd[0], args=[*omni_cmd[1:], "mcp"], env=server_env)
    changed = ListChanged()
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write, message_handler=changed) as s,
    ):
        await exercise(s, changed, extra_dir)


def check_probes_and_host_validation(base: str, mcp_path: str, failed: set[str]) -> None:
    assert httpx.get(f"{base}/health").text == "ok"
    ready = httpx.get(f"{base}/ready").json()
    assert {"files", "git", "web", "time", "hello"} <= set(ready["skills"])
    assert ready["tools"] >= 18
    assert {f["name"] for f in ready["failed"]} == failed
    bad_host = httpx.get(f"{base}/health", headers={"Host": "evil.example:80"})
    assert 400 <= bad_host.status_code < 500
    bad_origin = httpx.get(f"{base}/ready", headers={"Origin": "http://evil.example"})
    assert 400 <= bad_origin.status_code < 500
    post = httpx.post(f"{base}{mcp_path}", headers={"Host": "attacker.test"}, json={})
    assert 400 <= post.status_code < 500
    assert httpx.get(f"{base}/health", headers={"Origin": base}).status_code == 200


async def test_http_probes_hot_reload_and_sigterm(http_server: StartServer, extra_dir: Path) -> None:
    failed = set(write_broken_skills(extra_dir))
    base, proc = http_server("http")
    check_probes_and_host_validation(base, "/mcp", failed)
    changed = ListChanged()
    async with (
        streamable_http_client(f"{base}/mcp") as (read, write),
        ClientSession(read, write, message_handler=changed) as session,
    ):
        await exercise(session, changed, extra_dir)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(5) == 0
    assert time.monotonic() - started < 3


async def test_sse_probes_connect_list_call(http_server: StartServer, extra_dir: Path) -> None:
    failed = set(write_broken_skills(extra_dir))
    base, _ = http_server("sse")
    check_probes_and_host_validation(base, "/messages?session_id=x", failed)
    async with sse_client(f"{base}/sse") as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        assert "greet" in {t.name for t in (await session.list_tools()).tools}
        result = await session.call_tool("current_time", {"timezone": "UTC"})
        assert not result.is_error and result.structured_content
        assert result.structured_content["utc_offset"] == "+00:00"


def test_stdio_sigterm_exits_zero_quickly(
    omni_cmd: list[str], server_env: dict[str, str], tmp_path: Path
) -> None:
    with _start_stdio(omni_cmd, server_env, tmp_path / "stdio.log") as proc:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert time.monotonic() - started < 3


def test_stdin_eof_exits_zero(omni_cmd: list[str], server_env: dict[str, str], tmp_path: Path) -> None:
    with _start_stdio(omni_cmd, server_env, tmp_path / "stdio.log") as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        assert proc.wait(5) == 0
        assert proc.stdout.read() == b""  # nothing but protocol ever goes to stdout


def _start_stdio(omni_cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [*omni_cmd, "mcp"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err
        )
    deadline = time.monotonic() + 20
    while b"ready on stdio" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"omni mcp did not start: {log.read_text()}")
        time.sleep(0.05)
    return proc
