"""The shell skill under attack (issue 12), through the real ``omni mcp`` over stdio.

A command must not see the server's secrets, must not make the server buffer unbounded output,
and must leave no process behind: not at the cap, not at its time limit, not when cancelled.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession

from skills import _process
from tests.skills.conftest import ADMIN, RealServer, text_of

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see process groups"),
]

SECRETS = {
    "OMNI_SHELL_ENABLED": "true",
    "OMNI_TOOL_TIMEOUT": "4",
    "OMNI_TELEGRAM_TOKEN": "123456:telegram-secret",
    "OMNI_LLM_API_KEY": "llm-secret",
    "OPENAI_API_KEY": "openai-secret",
    "ANTHROPIC_API_KEY": "anthropic-secret",
}


def group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is in process group ``pgid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


async def gone(pgid: int) -> bool:
    for _ in range(60):  # SIGKILLed processes vanish at once; allow for a loaded machine
        if not group_alive(pgid):
            return True
        await anyio.sleep(0.05)
    return False


def home_of(workspace: Path) -> str:
    return str(workspace.resolve())


async def run(session: ClientSession, command: str, **args: Any) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    result = await session.call_tool("run_command", {"command": command, **args}, meta=ADMIN)
    assert not result.is_error and result.structured_content, text_of(result)
    return result.structured_content, time.monotonic() - started


async def test_commands_get_a_clean_environment_and_leave_nothing_running(
    real_server: RealServer, workspace: Path
) -> None:
    pid = workspace / "pid"
    async with real_server(**SECRETS) as session:
        env, _ = await run(session, "env")
        names = {line.partition("=")[0] for line in env["stdout"].splitlines()}
        assert names <= {"PATH", "HOME", "LANG", "TERM", "PWD", "OLDPWD", "SHLVL", "_"}, names
        assert "secret" not in env["stdout"]
        assert f"HOME={home_of(workspace)}" in env["stdout"] and "TERM=dumb" in env["stdout"]

        # Output is read as it comes and the producer is stopped at the cap.
        capped, took = await run(session, "echo $$ > pid; yes | head -c 100000000")
        assert capped["truncated"] and not capped["timed_out"] and took < 10
        assert len(capped["stdout"]) < 40 * 1024 and "[truncated at" in capped["stdout"]
        assert await gone(int(pid.read_text()))

        # Past its time limit the whole group goes, the backgrounded grandchild included.
        slow, took = await run(session, "echo $$ > pid; (sleep 30; echo late) & sleep 30", timeout_s=1)
        assert slow["timed_out"] and slow["exit_code"] == -9 and took < 10
        assert await gone(int(pid.read_text()))

        # What a finished command leaves in the background does not keep the call waiting.
        quick, took = await run(session, "echo $$ > pid; sleep 30 & echo done")
        assert quick == {
            "exit_code": 0,
            "stdout": "done\n",
            "stderr": "",
            "timed_out": False,
            "truncated": False,
        }
        assert took < 10 and await gone(int(pid.read_text()))

        # timeout_s is capped below the server's tool limit (4 s): the tool reports timed_out itself.
        clamped, took = await run(session, "echo $$ > pid; sleep 30", timeout_s=600)
        assert clamped["timed_out"] and took < 4
        assert await gone(int(pid.read_text()))


async def test_cancelling_a_run_kills_its_process_group(tmp_path: Path) -> None:
    # The MCP server cancels a tool that overruns OMNI_TOOL_TIMEOUT; the children must go too.
    pid = tmp_path / "pid"
    with anyio.move_on_after(0.5) as scope:
        await _process.run(
            ("/bin/sh", "-c", "echo $$ > pid; (sleep 30; echo late) & sleep 30"),
            cwd=tmp_path,
            env=_process.minimal_env(),
            seconds=60,
            cap=1024,
        )
    assert scope.cancelled_caught
    assert await gone(int(pid.read_text()))
