"""The agent's tool loop end to end: fake LLM scripted to call tools, the real `omni mcp`
subprocess and a second real MCP server from an mcp.json, a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agent import Agent, Progress, Turn, open_agent
from agent.toolbox import ToolBox
from memory.store import open_store
from omni.settings import Settings
from tests.agent.conftest import FAST_RETRY
from tests.fakes.llm_api import FakeLLM, ScriptedReply
from tests.fakes.server import serve
from tests.tools.conftest import EXTRA_SERVER

pytestmark = pytest.mark.anyio

ADMIN_ID, USER_ID = 1, 2


@pytest.fixture
def llm() -> FakeLLM:
    return FakeLLM()


@pytest.fixture
async def settings(
    llm: FakeLLM, make_settings: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[Settings]:
    from memory.migrate import upgrade

    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps({"mcpServers": {"extra": {"command": sys.executable, "args": [str(EXTRA_SERVER)]}}})
    )
    async with serve(llm.app) as base:
        settings = make_settings(
            llm_model="openai/fake-model",
            llm_api_base=base + "/v1",
            llm_api_key="sk-test",
            mcp_config=config,
            shell_enabled=True,
            max_tool_rounds=4,
        )
        await asyncio.to_thread(upgrade, settings.database_url)
        yield settings


@pytest.fixture
async def agent(settings: Settings) -> AsyncIterator[Agent]:
    async with (
        open_store(settings.database_url) as store,
        open_agent(settings, store, retry=FAST_RETRY) as agent,
    ):
        yield agent


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def turn(text: str, user_id: int = USER_ID) -> Turn:
    return Turn(
        f"tg:{user_id}", text, user_id=user_id, is_admin=user_id == ADMIN_ID, telegram_chat_id=user_id
    )


def tool_results(llm: FakeLLM, request: int) -> list[str]:
    return [m["content"] for m in llm.requests[request]["messages"] if m["role"] == "tool"]


async def test_files_are_written_and_read_in_the_users_workspace(
    agent: Agent, llm: FakeLLM, settings: Settings
) -> None:
    llm.enqueue(
        ScriptedReply(tool_calls=[call("skills__write_file", path="notes.md", content="buy milk")]),
        ScriptedReply(tool_calls=[call("skills__read_file", path="notes.md")]),
        ScriptedReply(text="Your note says: buy milk"),
    )
    events: list[Progress] = []

    async def progress(event: Progress) -> None:
        events.append(event)

    reply = await agent.reply(turn("save a note"), progress)
    assert reply.text == "Your note says: buy milk"
    assert (settings.workspace / "users" / str(USER_ID) / "notes.md").read_text() == "buy milk"
    assert "buy milk" in tool_results(llm, 2)[-1]
    assert any(e.kind == "tool_start" and "notes.md" in e.text for e in events)
    names = {t["function"]["name"] for t in llm.requests[0]["tools"]}
    assert {"skills__read_file", "extra__echo"} <= names
    assert "skills__run_command" not in names  # shell: admins only


async def test_history_with_tool_calls_is_valid_after_a_restart(settings: Settings, llm: FakeLLM) -> None:
    llm.enqueue(ScriptedReply(tool_calls=[call("extra__echo", text="hi")]), ScriptedReply(text="done"))
    async with open_store(settings.database_url) as store, open_agent(settings, store, tools=None) as _:
        pass
    async with open_store(settings.database_url) as store, open_agent(settings, store) as agent:
        assert (await agent.reply(turn("echo hi"))).text == "done"
    async with open_store(settings.database_url) as store, open_agent(settings, store) as agent:
        await agent.reply(turn("and now?"))
    history = llm.requests[-1]["messages"]
    roles = [m["role"] for m in history]
    assert roles[1:] == ["user", "assistant", "tool", "assistant", "user"]
    assert history[2]["tool_calls"][0]["id"] == history[3]["tool_call_id"]
    assert history[3]["content"] == "echo:hi"


async def test_bad_arguments_and_unknown_tools_go_back_to_the_model(agent: Agent, llm: FakeLLM) -> None:
    llm.enqueue(
        ScriptedReply(tool_calls=[call("extra__add", a="one"), call("skills__raed_file", path="x")]),
        ScriptedReply(text="sorry"),
    )
    assert (await agent.reply(turn("add"))).text == "sorry"
    bad_args, unknown = tool_results(llm, 1)
    assert bad_args.startswith("Error")
    assert "no tool named 'skills__raed_file'" in unknown and "skills__read_file" in unknown


async def test_parallel_calls_run_concurrently(agent: Agent, llm: FakeLLM) -> None:
    import time

    await agent.reply(turn("warm up"))  # servers started, litellm imported: time only the tools
    llm.enqueue(
        ScriptedReply(tool_calls=[call("extra__slow", seconds=1.0) for _ in range(3)]),
        ScriptedReply(text="all slept"),
    )
    started = time.monotonic()
    assert (await agent.reply(turn("sleep thrice"))).text == "all slept"
    assert time.monotonic() - started < 2.8
    assert tool_results(llm, -1)[-3:] == ["slept", "slept", "slept"]


async def test_endless_loop_is_stopped(agent: Agent, llm: FakeLLM) -> None:
    llm.enqueue(*[ScriptedReply(tool_calls=[call("extra__echo", text="again")]) for _ in range(5)])
    reply = await agent.reply(turn("loop"))
    assert "again and again" in reply.text
    assert len(llm.requests) == 3


async def test_round_limit_asks_for_a_final_answer_without_tools(agent: Agent, llm: FakeLLM) -> None:
    llm.enqueue(
        *[ScriptedReply(tool_calls=[call("extra__echo", text=str(i))]) for i in range(4)],
        ScriptedReply(text="here is what I found"),
    )
    reply = await agent.reply(turn("keep going"))
    assert reply.text == "here is what I found"
    last = llm.requests[-1]
    assert "tools" not in last or not last["tools"]
    assert "limit of 4 tool rounds" in last["messages"][-1]["content"]


async def test_path_escape_creates_nothing_outside_the_workspace(
    agent: Agent, llm: FakeLLM, settings: Settings, tmp_path: Path
) -> None:
    outside = tmp_path / "escaped.txt"
    llm.enqueue(
        ScriptedReply(
            tool_calls=[
                call("skills__write_file", path="../../../escaped.txt", content="x"),
                call("skills__write_file", path=str(outside), content="x"),
            ]
        ),
        ScriptedReply(text="could not"),
    )
    await agent.reply(turn("escape", user_id=ADMIN_ID))
    assert not outside.exists()
    assert all(r.startswith("Error") for r in tool_results(llm, 1))


async def test_non_admin_cannot_call_shell(agent: Agent, llm: FakeLLM, settings: Settings) -> None:
    marker = settings.workspace / "pwned"
    llm.enqueue(
        ScriptedReply(tool_calls=[call("skills__run_command", command=f"touch {marker}")]),
        ScriptedReply(text="no"),
    )
    await agent.reply(turn("run"))
    assert not marker.exists()
    assert "admins only" in tool_results(llm, 1)[0]


async def test_admin_can_call_shell(agent: Agent, llm: FakeLLM) -> None:
    llm.enqueue(
        ScriptedReply(tool_calls=[call("skills__run_command", command="echo hello-shell")]),
        ScriptedReply(text="ok"),
    )
    await agent.reply(turn("run", user_id=ADMIN_ID))
    assert "hello-shell" in tool_results(llm, 1)[0]
    names = {t["function"]["name"] for t in llm.requests[0]["tools"]}
    assert "skills__run_command" in names


async def test_skills_server_killed_mid_run_then_next_call_works(agent: Agent, llm: FakeLLM) -> None:
    llm.enqueue(ScriptedReply(tool_calls=[call("skills__list_files")]), ScriptedReply(text="listed"))
    await agent.reply(turn("ls"))
    box = agent._tools
    assert isinstance(box, ToolBox)
    pid = _child_pid("omni", "mcp")
    os.kill(pid, signal.SIGKILL)
    llm.enqueue(
        ScriptedReply(tool_calls=[call("skills__current_time", timezone="UTC")]),
        ScriptedReply(tool_calls=[call("skills__current_time", timezone="UTC")]),
        ScriptedReply(text="time told"),
    )
    assert (await agent.reply(turn("time?"))).text == "time told"
    first, second = tool_results(llm, -2)[-1], tool_results(llm, -1)[-1]
    assert first.startswith("Error") or "UTC" in first  # the call in flight may see the death
    assert "UTC" in second or "utc" in second.lower()


def _child_pid(*needles: str) -> int:
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().split()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[3]) == me and all(n.encode() in cmdline for n in needles):
            return int(entry.name)
    raise AssertionError("the skills server is not a child of this process")
