"""The real `omni bot` with OMNI_LOG_FORMAT=json: what its stderr carries while it answers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from tests.bot.conftest import FRIEND, BotProcess, Fakes
from tests.fakes.llm_api import ScriptedReply
from tests.fakes.telegram_api import TOKEN

API_KEY = "sk-test-key-123"  # start_bot's OMNI_LLM_API_KEY


def _wait(condition: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_json_logs_of_one_answer_carry_ids_durations_and_no_secret(
    start_bot: Callable[..., BotProcess], fakes_in_thread: Fakes
) -> None:
    tg, llm = fakes_in_thread.tg, fakes_in_thread.llm
    clock = {"name": "skills__current_time", "arguments": {"timezone": "UTC"}}
    llm.enqueue(
        ScriptedReply(tool_calls=[clock], delay=0.5),
        ScriptedReply(text="it is late"),
    )
    # DEBUG: the most lines (PTB's, the MCP SDK's, the skills server's), all of which must parse.
    bot = start_bot(OMNI_LOG_FORMAT="json", OMNI_LOG_LEVEL="DEBUG")
    first = tg.push_text(FRIEND, "what time is it?")
    second = tg.push_text(FRIEND, "thanks")  # queued behind the first, in the same chat's worker
    _wait(lambda: {"it is late", "echo: thanks"} <= set(tg.texts()))
    code, _ = bot.terminate()
    assert code == 0
    err = bot.stderr()
    assert TOKEN not in err and TOKEN.split(":")[1] not in err and API_KEY not in err

    lines: list[dict[str, Any]] = [json.loads(line) for line in err.splitlines()]
    assert all({"ts", "level", "logger", "msg"} <= line.keys() for line in lines)
    for update_id, llm_calls, tool_calls in ((first, 2, 1), (second, 1, 0)):
        mine = [line for line in lines if line.get("update_id") == update_id]
        assert all(line["chat_id"] == FRIEND for line in mine)  # a private chat's id is the user's
        calls = [line for line in mine if line["msg"] == "LLM call"]
        assert len(calls) == llm_calls  # the first: a tool round, then the answer
        for call in calls:
            assert call["model"] == "openai/fake-model" and call["outcome"] == "ok"
            assert isinstance(call["duration_ms"], float) and call["duration_ms"] > 0
            assert call["prompt_tokens"] > 0 and call["completion_tokens"] >= 0
        tools = [line for line in mine if line["msg"] == "tool call"]
        assert len(tools) == tool_calls
        assert all(t["tool"] == "skills__current_time" and t["outcome"] == "ok" for t in tools)
