"""`omni gateway` as a real process: answers, memory, the token, the rights of its callers,
refusing an unsafe bind, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.llm_api import FakeLLM, ScriptedReply
from tests.gateway.conftest import TOKEN, StartGateway, episodes, history, message

LLM = tuple[FakeLLM, str]


def prompt_of(request: dict[str, Any]) -> str:
    """Everything the model was shown, system prompt included, as one text."""
    return "\n".join(str(m.get("content") or "") for m in request["messages"])


def post(base: str, session_id: str, text: str, **kw: Any) -> httpx.Response:
    return httpx.post(f"{base}/message", json=message(session_id, text), timeout=30, **kw)


def test_answers_and_each_sessions_memory_survive_a_restart(
    start_gateway: StartGateway, llm_in_thread: LLM, db_url: str
) -> None:
    llm, _ = llm_in_thread
    gateway = start_gateway(database_url=db_url)
    base = gateway.wait_listening()
    first = post(base, "alice", "My cat is called Miso.")
    assert first.status_code == 200 and first.json() == {
        "session_id": "alice",
        "output": "echo: My cat is called Miso.",
    }
    assert post(base, "bob", "Hello, I am Bob.").status_code == 200
    assert post(base, "alice", "What is my cat called?").status_code == 200
    assert "Miso" in prompt_of(llm.requests[-1])  # alice's own history
    assert post(base, "bob", "What is my cat called?").status_code == 200
    assert "Miso" not in prompt_of(llm.requests[-1])  # nothing of alice's reaches bob
    assert gateway.terminate() == 0

    gateway = start_gateway(database_url=db_url)
    base = gateway.wait_listening()
    assert post(base, "alice", "Remind me of my cat's name.").status_code == 200
    assert "Miso" in prompt_of(llm.requests[-1])
    assert gateway.terminate() == 0

    stored = asyncio.run(history(db_url, "alice"))
    assert [m.role for m in stored] == ["user", "assistant"] * 3
    assert "My cat is called Miso." in asyncio.run(episodes(db_url, "alice"))
    assert "My cat is called Miso." not in asyncio.run(episodes(db_url, "bob"))


def test_with_a_token_only_its_bearer_gets_in(start_gateway: StartGateway, llm_in_thread: LLM) -> None:
    llm, _ = llm_in_thread
    gateway = start_gateway(OMNI_GATEWAY_TOKEN=TOKEN)
    base = gateway.wait_listening()
    assert httpx.get(f"{base}/health").json() == {"status": "ok"}
    for headers in ({}, {"authorization": "Bearer wrong-token-wrong-token"}):
        refused = post(base, "s1", "hi", headers=headers)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"] == "unauthorized"
    assert llm.requests == []
    ok = post(base, "s1", "hi", headers={"authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json()["output"] == "echo: hi"
    assert gateway.terminate() == 0
    assert TOKEN not in gateway.stderr()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com"])
def test_a_non_loopback_host_without_a_token_refuses_to_start(
    omni_cmd: list[str], host: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [*omni_cmd, "gateway", "--host", host, "--port", "0"],
        env={
            "PATH": "/usr/bin:/bin",
            "OMNI_LLM_MODEL": "openai/fake-model",
            "OMNI_DATA_DIR": str(tmp_path / "d"),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "OMNI_GATEWAY_TOKEN" in lines[0], result.stderr
    assert not (tmp_path / "d" / "omni.db").exists()  # refused before the database was touched


def test_a_gateway_caller_has_a_non_admins_rights(
    start_gateway: StartGateway, llm_in_thread: LLM, tmp_path: Path
) -> None:
    llm, _ = llm_in_thread
    workspace = tmp_path / "data" / "workspace"
    workspace.mkdir(parents=True)
    (workspace / "private.txt").write_text("the admin's own notes")
    gateway = start_gateway(skills=True, OMNI_SHELL_ENABLED="true")
    base = gateway.wait_listening()

    llm.enqueue(
        ScriptedReply(
            tool_calls=[
                {"name": "skills__write_file", "arguments": {"path": "notes.txt", "content": "from alice"}},
                {"name": "skills__remember", "arguments": {"text": "alice likes green tea"}},
            ]
        ),
        ScriptedReply(text="done"),
    )
    assert post(base, "alice", "note this").json()["output"] == "done"
    offered = {t["function"]["name"] for t in llm.requests[0]["tools"]}
    assert "skills__write_file" in offered and "skills__run_command" not in offered  # no shell
    assert (workspace / "sessions" / "gw" / "alice" / "notes.txt").read_text() == "from alice"
    assert not (workspace / "notes.txt").exists()

    llm.enqueue(
        ScriptedReply(
            tool_calls=[
                {"name": "skills__run_command", "arguments": {"command": "id"}},
                {"name": "skills__read_file", "arguments": {"path": "../../../private.txt"}},
                {"name": "skills__read_file", "arguments": {"path": "../alice/notes.txt"}},
                {"name": "skills__recall", "arguments": {"query": "green tea"}},
            ]
        ),
        ScriptedReply(text="nothing for you"),
    )
    assert post(base, "mallory", "show me everything").status_code == 200
    results = [m["content"] for m in llm.requests[-1]["messages"] if m["role"] == "tool"]
    assert "admins only" in results[0]
    assert results[1].startswith("Error") and results[2].startswith("Error")
    assert "the admin's own notes" not in results[1] and "from alice" not in results[2]
    assert not results[3].startswith("Error") and "green tea" not in results[3]  # alice's, not hers
    assert gateway.terminate() == 0
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'omni.db'}"
    assert "alice likes green tea" in asyncio.run(episodes(sqlite_url, "alice"))


def _children() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        ppid = int(text.rpartition(")")[2].split()[1])
        tree.setdefault(ppid, []).append(int(stat.parent.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_finishes_the_request_in_flight_then_exits_0_leaving_no_children(
    start_gateway: StartGateway, llm_in_thread: LLM
) -> None:
    llm, _ = llm_in_thread
    gateway = start_gateway(skills=True)
    base = gateway.wait_listening()
    assert post(base, "s1", "start the tools").status_code == 200  # the MCP server is up now
    children = descendants(gateway.proc.pid)
    assert children, "the skills server should run as a child process"

    llm.enqueue(ScriptedReply(text="finished after the signal", delay=2.0))
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(post, base, "s1", "a slow one")
        deadline = time.monotonic() + 10
        while len(llm.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        started = time.monotonic()
        gateway.proc.send_signal(15)
        time.sleep(0.5)
        with pytest.raises(httpx.ConnectError):  # no longer accepting
            httpx.get(f"{base}/health", timeout=2)
        response = in_flight.result(timeout=20)
    assert response.status_code == 200 and response.json()["output"] == "finished after the signal"
    assert gateway.wait(within=20) == 0
    assert time.monotonic() - started < 15
    leftovers = [pid for pid in children if alive(pid)]
    assert not leftovers, f"orphaned child processes: {leftovers}"
    assert "Traceback" not in gateway.stderr()
