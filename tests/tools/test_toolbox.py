"""ToolBox against real MCP servers: a tiny SDK server over stdio and over Streamable HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.mcp_config import RemoteSpec, StdioSpec
from agent.toolbox import MAX_NAME, ToolBox, public_name
from agent.types import Turn
from tests.tools.conftest import EXTRA_SERVER, free_port

pytestmark = pytest.mark.anyio

ADMIN = Turn("t:1", "hi", user_id=1, is_admin=True)
USER = Turn("t:2", "hi", user_id=2, is_admin=False)
VALID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def test_public_names_are_valid_unique_and_stable() -> None:
    taken: set[str] = set()
    names = [public_name("srv", t, taken) for t in ("read", "weird.name with spaces!", "x" * 100)]
    assert names[0] == "srv__read"
    assert all(VALID.match(n) for n in names)
    long = public_name("srv", "x" * 100, set())
    assert len(long) == MAX_NAME and long == names[2]  # deterministic
    clash = public_name("srv", "read", {"srv__read"})
    assert clash != "srv__read" and VALID.match(clash)


async def test_lists_and_calls_tools_of_a_stdio_server(extra_spec: StdioSpec) -> None:
    async with ToolBox({"extra": extra_spec}) as box:
        tools = await box.list_tools(ADMIN)
        names = {t["function"]["name"] for t in tools}
        assert {"extra__echo", "extra__add", "extra__wipe"} <= names
        assert all(VALID.match(n) for n in names)
        assert "extra__weird_name_with_spaces" in names
        schema = next(t for t in tools if t["function"]["name"] == "extra__add")["function"]["parameters"]
        assert schema["type"] == "object" and set(schema["properties"]) == {"a", "b"}
        assert await box.call("extra__echo", {"text": "hey"}, ADMIN) == "echo:hey"
        assert await box.call("extra__add", {"a": 2, "b": 3}, ADMIN) == "5"
        assert await box.call("extra__weird_name_with_spaces", {}, ADMIN) == "weird ok"


async def test_tool_errors_come_back_as_text(extra_spec: StdioSpec) -> None:
    async with ToolBox({"extra": extra_spec}) as box:
        failed = await box.call("extra__fail", {}, ADMIN)
        assert failed.startswith("Error") and "fail" in failed  # the SDK hides the exception text
        bad_args = await box.call("extra__add", {"a": "two"}, ADMIN)
        assert bad_args.startswith("Error")
        unknown = await box.call("extra__ech", {}, ADMIN)
        assert "no tool named 'extra__ech'" in unknown and "extra__echo" in unknown
        assert await box.call("extra__echo", {"text": "still fine"}, ADMIN) == "echo:still fine"


async def test_slow_tool_times_out(extra_spec: StdioSpec) -> None:
    async with ToolBox({"extra": extra_spec}, call_timeout=0.5) as box:
        started = time.monotonic()
        result = await box.call("extra__slow", {"seconds": 5}, ADMIN)
        assert "did not finish within" in result and time.monotonic() - started < 3


async def test_long_results_are_truncated_with_a_note(extra_spec: StdioSpec) -> None:
    async with ToolBox({"extra": extra_spec}, result_cap=1000) as box:
        result = await box.call("extra__big", {"size": 5000}, ADMIN)
        assert result.startswith("x" * 1000) and "[truncated: the result was 5,000 characters" in result


async def test_dead_server_is_restarted_on_next_use(extra_spec: StdioSpec) -> None:
    async with ToolBox({"extra": extra_spec}) as box:
        died = await box.call("extra__die", {}, ADMIN)
        assert died.startswith("Error") and "restarted" in died
        assert await box.call("extra__echo", {"text": "back"}, ADMIN) == "echo:back"
        assert [s.state for s in box.status()] == ["ready"]


async def test_failing_server_is_reported_and_others_work(extra_spec: StdioSpec) -> None:
    broken = StdioSpec(command=sys.executable, args=["-c", "import sys; sys.exit(3)"])
    missing = StdioSpec(command="/no/such/binary")
    async with ToolBox({"extra": extra_spec, "broken": broken, "missing": missing}, start_timeout=10) as box:
        states = {s.name: (s.state, s.error) for s in box.status()}
        assert states["extra"][0] == "ready"
        assert states["broken"][0] == "failed" and states["broken"][1]
        assert states["missing"][0] == "failed"
        assert await box.call("extra__echo", {"text": "ok"}, ADMIN) == "echo:ok"


async def test_destructive_tools_of_admin_only_servers_are_for_admins(extra_spec: StdioSpec) -> None:
    guarded = extra_spec.model_copy(update={"admin_only": True})
    async with ToolBox({"extra": guarded}) as box:
        user_names = {t["function"]["name"] for t in await box.list_tools(USER)}
        admin_names = {t["function"]["name"] for t in await box.list_tools(ADMIN)}
        assert "extra__wipe" in admin_names and "extra__wipe" not in user_names
        assert "extra__echo" not in user_names  # MCP's default: a tool not marked read-only is destructive
        assert "admins only" in await box.call("extra__wipe", {"target": "x"}, USER)
        assert await box.call("extra__wipe", {"target": "x"}, ADMIN) == "wiped x"


async def test_reload_restarts_only_changed_servers(extra_spec: StdioSpec) -> None:
    async with ToolBox({"extra": extra_spec}) as box:
        assert await box.reload({"extra": extra_spec}) == []
        second = StdioSpec(command=sys.executable, args=[str(EXTRA_SERVER)], env={"X": "1"})
        changes = await box.reload({"extra": extra_spec, "second": second})
        assert changes == ["started second"]
        assert await box.call("second__echo", {"text": "2"}, ADMIN) == "echo:2"
        assert await box.reload({"second": second}) == ["stopped extra"]
        assert await box.call("extra__echo", {"text": "x"}, ADMIN) != "echo:x"


@pytest.fixture
def http_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(EXTRA_SERVER), "http", str(port)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_remote_server_over_streamable_http(http_server: str) -> None:
    spec = RemoteSpec(url=http_server, headers={"X-Test": "1"})
    async with ToolBox({"remote": spec}) as box:
        assert await box.call("remote__echo", {"text": "net"}, ADMIN) == "echo:net"


async def test_unreachable_remote_server_is_reported_quickly() -> None:
    spec = RemoteSpec(url=f"http://127.0.0.1:{free_port()}/mcp")
    started = time.monotonic()
    async with ToolBox({"gone": spec}, start_timeout=10) as box:
        [status] = box.status()
        assert status.state == "failed" and status.error
    assert time.monotonic() - started < 10


async def test_servers_start_concurrently(extra_spec: StdioSpec) -> None:
    specs = {f"s{i}": extra_spec for i in range(3)}
    started = time.monotonic()
    async with ToolBox(specs) as box:
        elapsed = time.monotonic() - started
        assert all(s.state == "ready" for s in box.status())
        results = await asyncio.gather(*(box.call(f"s{i}__echo", {"text": str(i)}, ADMIN) for i in range(3)))
        assert results == ["echo:0", "echo:1", "echo:2"]
    assert elapsed < 5


def _extra_servers() -> list[int]:
    """Pids of the live extra servers this test process started (zombies have no cmdline)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me and str(EXTRA_SERVER).encode() in cmdline:
            found.append(int(entry.name))
    return found


def _kill_extra_server() -> int:
    [pid] = _extra_servers()
    os.kill(pid, signal.SIGKILL)
    return pid


async def _until(box: ToolBox, state: str) -> None:
    """Wait (up to 15 s) until the only server is in ``state``; status has no event to wait on."""
    for _ in range(1500):
        if box.status()[0].state == state:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the server is {box.status()[0].state}, not {state}")


async def test_server_killed_while_idle_is_restarted_by_the_next_call(extra_spec: StdioSpec) -> None:
    async with ToolBox({"extra": extra_spec}) as box:
        assert await box.call("extra__echo", {"text": "before"}, ADMIN) == "echo:before"
        old = _kill_extra_server()
        await _until(box, "failed")  # noticed without any call
        started = time.monotonic()
        assert await box.call("extra__echo", {"text": "back"}, ADMIN) == "echo:back"
        assert time.monotonic() - started < 10
        assert [s.state for s in box.status()] == ["ready"] and _extra_servers() != [old]
    assert _extra_servers() == []


async def test_server_killed_during_a_call_fails_that_call_promptly(extra_spec: StdioSpec) -> None:
    async with ToolBox({"extra": extra_spec}, call_timeout=60) as box:
        pending = asyncio.create_task(box.call("extra__slow", {"seconds": 30}, ADMIN))
        await asyncio.sleep(0.5)
        _kill_extra_server()
        started = time.monotonic()
        result = await pending
        assert result.startswith("Error") and "stopped while running extra__slow" in result
        assert time.monotonic() - started < 2
        assert await box.call("extra__echo", {"text": "next"}, ADMIN) == "echo:next"
    assert _extra_servers() == []


async def test_server_killed_while_idle_is_restarted_in_the_background(extra_spec: StdioSpec) -> None:
    async with ToolBox({"extra": extra_spec}) as box:
        old = _kill_extra_server()
        await _until(box, "failed")
        await _until(box, "ready")
        assert _extra_servers() not in ([], [old])
        started = time.monotonic()
        assert await box.call("extra__echo", {"text": "warm"}, ADMIN) == "echo:warm"
        assert time.monotonic() - started < 0.5  # no start paid by the call
    assert _extra_servers() == []


async def test_a_server_that_keeps_dying_is_restarted_with_backoff(extra_spec: StdioSpec) -> None:
    async with ToolBox({"extra": extra_spec}) as box:
        _kill_extra_server()
        await _until(box, "failed")
        assert await box.call("extra__echo", {"text": "1"}, ADMIN) == "echo:1"
        _kill_extra_server()  # again, soon after its restart: a crash loop
        await _until(box, "failed")
        refused = await box.call("extra__echo", {"text": "2"}, ADMIN)
        assert refused.startswith("Error") and "restarting; retry in 1 s" in refused
        await _until(box, "ready")  # the background restart waited out the backoff
        assert await box.call("extra__echo", {"text": "3"}, ADMIN) == "echo:3"
    assert _extra_servers() == []


@pytest.mark.parametrize("moment", ["failed", "starting"])  # restart pending / under way
async def test_closing_during_a_background_restart_leaves_no_process(
    extra_spec: StdioSpec, moment: str
) -> None:
    async with ToolBox({"extra": extra_spec}) as box:
        _kill_extra_server()
        await _until(box, moment)
    assert _extra_servers() == []
    await asyncio.sleep(1)
    assert _extra_servers() == []  # and nothing starts one later
