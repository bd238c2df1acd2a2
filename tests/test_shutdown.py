"""Every long-running command stops cleanly on SIGTERM and on SIGINT (issue 14).

Each test starts the real command against the fakes, makes it do work, reads its process tree
from /proc, sends one signal, to the command alone (as a supervisor does) or to its whole
process group (as a terminal's Ctrl-C does: the skills server gets it too), and checks what a
user or an operator would see: exit code 0,
every process it had started gone (the skills server the bot and the chat spawn), the work in
flight delivered or left open for a restart to resume (never lost), and the SQLite database
intact with its write-ahead log checkpointed away.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.fakes.llm_api import FakeLLM, ScriptedReply
from tests.fakes.server import serve_in_thread
from tests.fakes.telegram_api import TOKEN, FakeTelegram

USER = 2002
EXIT_WITHIN_S = 15.0  # the bot's bounded drain (5 s) plus its slowest stop step, with room
NAP_TOOLS = '''
import asyncio


async def nap(seconds: float) -> str:
    """Sleep, then say so: a tool call that is still running when the signal comes."""
    await asyncio.sleep(seconds)
    return "rested"
'''


# -- the process tree, from /proc ------------------------------------------------------------


def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # exited while we looked
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return parents


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``: its children, theirs, and so on."""
    parents, found, frontier = _parents(), set[int](), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Running, or stopped but not yet exited (a zombie has exited: only its entry is left)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def skills_children(pid: int) -> set[int]:
    return {p for p in descendants(pid) if " mcp" in cmdline(p)}


def wait_until(condition: Callable[[], object], within: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@dataclass
class Stopped:
    code: int
    took: float
    left: set[int]  # processes of the tree recorded before the signal still running after exit


def stop(proc: subprocess.Popen[Any], sig: signal.Signals, *, group: bool = False) -> Stopped:
    """Record the tree, send ``sig`` to the command alone or to its process group (it leads
    one: ``spawn``), wait for its exit."""
    tree = descendants(proc.pid)
    started = time.monotonic()
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    code = proc.wait(timeout=EXIT_WITHIN_S + 5)
    took = time.monotonic() - started
    left = {pid for pid in tree if alive(pid)}
    for pid in left:  # reported by the test; not left to outlive it
        kill_quietly(pid)
    return Stopped(code, took, left)


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# -- the database ----------------------------------------------------------------------------


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, args).fetchall()


def assert_closed_cleanly(db: Path) -> None:
    """Intact, and closed by its last connection: SQLite checkpoints and deletes the log then
    (read before opening it here, which could do the same)."""
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "the write-ahead log was left behind"
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


# -- fixtures ----------------------------------------------------------------------------------


@dataclass
class Fakes:
    tg: FakeTelegram
    llm: FakeLLM
    tg_url: str
    llm_url: str


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    tg, llm = FakeTelegram(), FakeLLM()
    with serve_in_thread(tg.app) as tg_url, serve_in_thread(llm.app) as llm_url:
        yield Fakes(tg, llm, tg_url, llm_url + "/v1")


@pytest.fixture
def env(fakes: Fakes, tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OMNI_")}
    return {
        **base,
        "OMNI_TELEGRAM_TOKEN": TOKEN,
        "OMNI_TELEGRAM_API_URL": fakes.tg_url,
        "OMNI_LLM_MODEL": "openai/fake-model",
        "OMNI_LLM_API_BASE": fakes.llm_url,
        "OMNI_LLM_API_KEY": "sk-test-key-123",
        "OMNI_ALLOWED_IDS": str(USER),
        "OMNI_DATA_DIR": str(tmp_path / "data"),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }


@pytest.fixture
def spawn(
    omni_cmd: list[str], env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[Any]]]:
    """Start ``omni <args>`` (stderr to a log file); whatever is still running is killed after."""
    procs: list[subprocess.Popen[Any]] = []
    logs: list[IO[bytes]] = []

    def start(*args: str, stdin: int | None = subprocess.DEVNULL, **extra: str) -> subprocess.Popen[Any]:
        log = (tmp_path / f"omni-{len(procs)}.log").open("wb")
        logs.append(log)
        proc = subprocess.Popen(
            [*omni_cmd, *args],
            env={**env, **extra},
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,  # its own process group, as a shell gives a command
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        for pid in descendants(proc.pid):
            kill_quietly(pid)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
    for log in logs:
        log.close()


def db_of(tmp_path: Path) -> Path:
    return tmp_path / "data" / "omni.db"


def assert_quiet(tmp_path: Path) -> None:
    """A clean stop logs no error and no traceback."""
    for log in tmp_path.glob("omni-*.log"):
        text = log.read_text(errors="replace")
        assert "Traceback" not in text and " ERROR " not in text, text[-3000:]


# -- omni bot ----------------------------------------------------------------------------------


def test_bot_on_sigterm_finishes_a_quick_reply_then_exits_zero_with_no_processes_left(
    spawn: Callable[..., subprocess.Popen[Any]], fakes: Fakes, tmp_path: Path
) -> None:
    fakes.llm.enqueue(ScriptedReply(text="here it is", delay=1.0))
    bot = spawn("bot")
    update_id = fakes.tg.push_text(USER, "a question")
    wait_until(lambda: fakes.llm.requests, what="the LLM call")  # the tools were listed first
    assert skills_children(bot.pid), "the skills server was not running as the bot's child"
    stopped = stop(bot, signal.SIGTERM)
    assert stopped.code == 0
    assert stopped.left == set()
    assert_quiet(tmp_path)
    assert fakes.tg.texts(USER) == ["here it is"]  # in flight at the signal, finished
    db = db_of(tmp_path)
    assert_closed_cleanly(db)
    assert query(db, "SELECT status FROM updates WHERE update_id = ?", update_id) == [("answered",)]


def test_bot_on_ctrl_c_leaves_a_slow_reply_open_for_the_next_start(
    spawn: Callable[..., subprocess.Popen[Any]], fakes: Fakes, tmp_path: Path
) -> None:
    fakes.llm.enqueue(ScriptedReply(text="too late", delay=60))
    bot = spawn("bot")
    update_id = fakes.tg.push_text(USER, "a long question")
    wait_until(lambda: fakes.llm.requests, what="the LLM call")
    assert skills_children(bot.pid)
    stopped = stop(bot, signal.SIGINT, group=True)
    assert stopped.code == 0 and stopped.took < EXIT_WITHIN_S
    assert stopped.left == set()
    assert_quiet(tmp_path)
    assert fakes.tg.texts(USER) == []
    db = db_of(tmp_path)
    assert_closed_cleanly(db)
    # Open, with the update kept: the next start replays it (tests/bot/test_process.py).
    (status, payload), *_ = query(
        db, "SELECT status, payload IS NOT NULL FROM updates WHERE update_id = ?", update_id
    )
    assert status in ("received", "processing") and payload == 1
    assert query(db, "SELECT count(*) FROM messages WHERE content = 'a long question'") == [(1,)]


# -- omni chat ---------------------------------------------------------------------------------


def _chat(spawn: Callable[..., subprocess.Popen[Any]]) -> subprocess.Popen[Any]:
    return spawn("chat", stdin=subprocess.PIPE)


def _say(chat: subprocess.Popen[Any], line: str) -> None:
    assert chat.stdin is not None
    chat.stdin.write(line.encode() + b"\n")
    chat.stdin.flush()


def test_chat_waiting_for_input_exits_zero_on_ctrl_c_with_no_processes_left(
    spawn: Callable[..., subprocess.Popen[Any]], fakes: Fakes, tmp_path: Path
) -> None:
    chat = _chat(spawn)
    _say(chat, "hello")
    assert chat.stdout is not None
    assert chat.stdout.readline() == b"echo: hello\n"
    assert skills_children(chat.pid), "the skills server was not running as the chat's child"
    stopped = stop(chat, signal.SIGINT, group=True)  # stdin open: waiting for the next line
    assert stopped.code == 0
    assert stopped.left == set()
    assert_quiet(tmp_path)
    assert chat.stdout.read() == b""
    assert_closed_cleanly(db_of(tmp_path))


def test_chat_generating_a_reply_exits_zero_on_sigterm_and_keeps_the_question(
    spawn: Callable[..., subprocess.Popen[Any]], fakes: Fakes, tmp_path: Path
) -> None:
    fakes.llm.enqueue(ScriptedReply(text="too late", delay=60))
    chat = _chat(spawn)
    _say(chat, "a long question")
    wait_until(lambda: fakes.llm.requests, what="the LLM call")
    assert skills_children(chat.pid)
    stopped = stop(chat, signal.SIGTERM)
    assert stopped.code == 0 and stopped.took < 5
    assert stopped.left == set()
    assert_quiet(tmp_path)
    assert chat.stdout is not None and chat.stdout.read() == b""
    db = db_of(tmp_path)
    assert_closed_cleanly(db)
    # The question stays in the session: the next `omni chat` continues from it.
    assert query(db, "SELECT role FROM messages WHERE content = 'a long question'") == [("user",)]


# -- omni mcp ----------------------------------------------------------------------------------


@pytest.fixture
def nap_skill(tmp_path: Path) -> Path:
    folder = tmp_path / "skills" / "nap"
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text("---\nname: nap\ndescription: Sleeps.\n---\n# nap\n")
    (folder / "tools.py").write_text(NAP_TOOLS)
    return folder.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mcp_env(tmp_path: Path, skills: Path) -> dict[str, str]:
    return {"OMNI_SKILLS_DIRS": str(skills), "OMNI_WORKSPACE": str(tmp_path / "ws")}


def _wait_healthy(base: str, proc: subprocess.Popen[Any]) -> None:
    def healthy() -> bool:
        assert proc.poll() is None, f"omni mcp exited with {proc.returncode}"
        try:
            return httpx.get(f"{base}/health", timeout=1).text == "ok"
        except httpx.HTTPError:
            return False

    wait_until(healthy, within=20, what="omni mcp to answer /health")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("transport", "sig"),
    [
        pytest.param("http", signal.SIGTERM, id="http-SIGTERM"),
        pytest.param("sse", signal.SIGINT, id="sse-SIGINT"),
    ],
)
async def test_mcp_over_http_finishes_a_tool_call_then_exits_zero(
    transport: str,
    sig: signal.Signals,
    spawn: Callable[..., subprocess.Popen[Any]],
    nap_skill: Path,
    tmp_path: Path,
) -> None:
    import anyio
    from mcp import ClientSession
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp_types import TextContent

    port = _free_port()
    server = spawn("mcp", "--transport", transport, "--port", str(port), **_mcp_env(tmp_path, nap_skill))
    base = f"http://127.0.0.1:{port}"
    await anyio.to_thread.run_sync(_wait_healthy, base, server)
    # The server goes away under the client: it is left by cancelling, so it tries no goodbye.
    client = (
        streamable_http_client(f"{base}/mcp", terminate_on_close=False)
        if transport == "http"
        else sse_client(f"{base}/sse")
    )
    results: list[str] = []
    with anyio.CancelScope() as scope:
        async with client as streams, ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            # Cached now: otherwise the SDK asks for the tool list after the call's result (for
            # its output schema), and that request meets a server on its way out.
            await session.list_tools()

            async def call() -> None:
                result = await session.call_tool("nap", {"seconds": 1.0})
                results.extend(c.text for c in result.content if isinstance(c, TextContent))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await anyio.sleep(0.3)  # the call is running in the server
                stopped = await anyio.to_thread.run_sync(stop, server, sig)
            scope.cancel()
    assert stopped.code == 0 and stopped.took < 5
    assert stopped.left == set()
    assert_quiet(tmp_path)
    assert results == ["rested"]  # in flight at the signal, finished


def _rpc(server: subprocess.Popen[Any], message: dict[str, Any]) -> None:
    assert server.stdin is not None
    server.stdin.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")
    server.stdin.flush()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_mcp_over_stdio_exits_zero_with_a_call_in_flight(
    sig: signal.Signals, spawn: Callable[..., subprocess.Popen[Any]], nap_skill: Path, tmp_path: Path
) -> None:
    server = spawn("mcp", stdin=subprocess.PIPE, **_mcp_env(tmp_path, nap_skill))
    assert server.stdout is not None
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    _rpc(server, {"id": 1, "method": "initialize", "params": hello})
    assert json.loads(server.stdout.readline())["id"] == 1
    _rpc(server, {"method": "notifications/initialized"})
    _rpc(server, {"id": 2, "method": "tools/call", "params": {"name": "nap", "arguments": {"seconds": 30}}})
    time.sleep(0.3)  # the call is running in the server
    stopped = stop(server, sig)  # stdin stays open: the signal alone ends it
    assert stopped.code == 0 and stopped.took < 3
    assert stopped.left == set()
    assert_quiet(tmp_path)
    # Whatever was written is protocol: the client that started the server reads stdout.
    assert all(json.loads(line)["jsonrpc"] == "2.0" for line in server.stdout.read().splitlines())
