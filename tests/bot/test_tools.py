"""Tools from Telegram: the real skills server and an extra MCP server, a live status line,
/stop in the middle of a tool loop, MCP servers in /status."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from omni.settings import Settings
from tests.bot.conftest import ADMIN, FRIEND, Fakes, bot_running, fakes_in_loop, settings_for
from tests.fakes.llm_api import FakeLLM, ScriptedReply
from tests.fakes.telegram_api import FakeTelegram
from tests.tools.conftest import EXTRA_SERVER

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def bot_with_tools(
    make_settings: Callable[..., Settings], tmp_path: Path, **overrides: object
) -> AsyncIterator[tuple[FakeTelegram, FakeLLM, Settings]]:
    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps({"mcpServers": {"extra": {"command": sys.executable, "args": [str(EXTRA_SERVER)]}}})
    )
    fakes: Fakes
    async with fakes_in_loop() as fakes:
        settings = settings_for(make_settings, fakes, mcp_config=config, **overrides)
        async with bot_running(settings):
            yield fakes.tg, fakes.llm, settings


def call(name: str, **arguments: object) -> dict[str, object]:
    return {"name": name, "arguments": arguments}


async def test_user_creates_and_edits_a_file_with_a_live_status_line(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # Without streaming, a status message of its own (streamed, the preview shows the tool).
    async with bot_with_tools(make_settings, tmp_path, stream_answers=False) as (tg, llm, settings):
        llm.enqueue(
            ScriptedReply(tool_calls=[call("skills__write_file", path="plan.md", content="step one")]),
            ScriptedReply(tool_calls=[call("skills__edit_file", path="plan.md", find="one", replace="two")]),
            ScriptedReply(tool_calls=[call("extra__echo", text="done")]),
            ScriptedReply(text="Wrote **plan.md** for you."),
        )
        tg.push_text(FRIEND, "make me a plan file")
        answer = None
        for _ in range(200):
            answers = [
                s
                for s in tg.sent
                if s.method == "sendMessage" and "plan.md" in s.text and "for you" in s.text
            ]
            if answers:
                answer = answers[0]
                break
            await asyncio.sleep(0.05)
        assert answer is not None and "<b>plan.md</b>" in answer.text
        assert (settings.workspace / "users" / str(FRIEND) / "plan.md").read_text() == "step one".replace(
            "one", "two"
        )
        statuses = [s for s in tg.sent if s.text.startswith(("✍️", "✏️", "🔧"))]
        assert statuses and statuses[0].method == "sendMessage" and "plan.md" in statuses[0].text
        assert all(s.message_id == statuses[0].message_id for s in statuses)  # edited in place
        edits = [s.at for s in statuses]
        assert all(b - a >= 1.4 for a, b in zip(edits, edits[1:], strict=False))  # flood-safe spacing
        await asyncio.sleep(0.2)
        deleted = [p for m, p in tg.calls if m == "deleteMessage"]
        assert any(int(p["message_id"]) == statuses[0].message_id for p in deleted)


async def test_the_tool_in_use_shows_in_the_streamed_preview(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    async with bot_with_tools(make_settings, tmp_path) as (tg, llm, _):
        llm.enqueue(
            ScriptedReply(tool_calls=[call("skills__write_file", path="a.md", content="x")]),
            ScriptedReply(tool_calls=[call("extra__slow", seconds=3)]),
            ScriptedReply(
                text="All **done**, the file is written and the wait is over. " + "Words to read. " * 12,
                tokens_per_s=30,
            ),
        )
        tg.push_text(FRIEND, "write and wait")
        for _ in range(300):
            if any("wait is over" in s.text for s in tg.sent):
                break
            await asyncio.sleep(0.05)
        drafts = [d.text for d in tg.drafts_for(FRIEND)]
        assert any(d.startswith("<i>") and "slow" in d for d in drafts), drafts  # the tool, in italics
        assert any("All <b>done</b>" in d for d in drafts)  # then the answer replaces it
        # No status message of its own: the one message sent is the answer.
        assert [s.text for s in tg.sent if s.chat_id == FRIEND][-1].startswith("All <b>done</b>")
        assert not any(s.text.startswith("🔧") for s in tg.sent)


async def test_stop_cancels_a_tool_loop_and_the_session_stays_valid(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    async with bot_with_tools(make_settings, tmp_path) as (tg, llm, _):
        llm.enqueue(ScriptedReply(tool_calls=[call("extra__slow", seconds=30)]))
        tg.push_text(FRIEND, "do something slow")
        for _ in range(200):
            if any("slow" in d.text for d in tg.drafts_for(FRIEND)):  # the tool is running
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the slow tool never showed in the preview")
        tg.push_text(FRIEND, "/stop")
        for _ in range(100):
            if any("Stopped" in s.text for s in tg.sent):
                break
            await asyncio.sleep(0.05)
        assert any("Stopped" in s.text for s in tg.sent)
        llm.enqueue(ScriptedReply(text="fresh answer"))
        tg.push_text(FRIEND, "hello again")
        for _ in range(200):
            if any(s.text == "fresh answer" for s in tg.sent):
                break
            await asyncio.sleep(0.05)
        assert any(s.text == "fresh answer" for s in tg.sent)
        history = llm.requests[-1]["messages"]
        # The cancelled round left no tool call without its result.
        assert [m["role"] for m in history[1:]] == ["user", "user"]


async def test_status_lists_mcp_servers(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    async with bot_with_tools(make_settings, tmp_path) as (tg, _, _):
        tg.push_text(ADMIN, "hello")  # the first turn waits for the servers to be up
        await tg.messages(1)
        tg.push_text(ADMIN, "/status")
        status = (await tg.messages(2))[1].text
        assert "mcp extra: 8 tools" in status and "mcp skills:" in status
