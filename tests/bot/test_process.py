"""The real `omni bot` as a subprocess: restarts, kill -9, SIGTERM, secrets in logs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.bot.conftest import FRIEND, BotProcess, Fakes, query
from tests.fakes.llm_api import ScriptedReply
from tests.fakes.telegram_api import TOKEN


def _wait(condition: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_answers_stops_on_sigterm_and_keeps_history_across_restarts(
    start_bot: Callable[..., BotProcess], fakes_in_thread: Fakes
) -> None:
    tg, llm = fakes_in_thread.tg, fakes_in_thread.llm
    first = start_bot(OMNI_LOG_LEVEL="DEBUG")
    tg.push_text(FRIEND, "my name is Bob")
    assert tg.wait_for_messages(1, timeout=60)[0].text == "echo: my name is Bob"
    code, took = first.terminate()
    assert code == 0 and took < 10
    log = first.stderr()
    assert "polling" in log
    assert TOKEN not in log and TOKEN.split(":")[1] not in log and "sk-test-key-123" not in log
    start_bot()
    tg.push_text(FRIEND, "what is my name?")
    assert tg.wait_for_messages(2, timeout=60)[1].text == "echo: what is my name?"
    contents = [m["content"] for m in llm.requests[-1]["messages"]]
    assert "my name is Bob" in contents and "echo: my name is Bob" in contents


def test_killed_mid_reply_is_answered_exactly_once_after_restart(
    start_bot: Callable[..., BotProcess], fakes_in_thread: Fakes, tmp_path: Path
) -> None:
    tg, llm = fakes_in_thread.tg, fakes_in_thread.llm
    llm.enqueue(ScriptedReply(text="never delivered", delay=60))
    first = start_bot()
    update_id = tg.push_text(FRIEND, "important question")
    _wait(lambda: len(llm.requests) == 1, within=60)
    first.kill()  # SIGKILL: no cleanup at all
    start_bot()
    assert tg.wait_for_messages(1, timeout=60)[0].text == "echo: important question"
    time.sleep(1.0)
    assert tg.texts() == ["echo: important question"]
    db = tmp_path / "data" / "omni.db"
    _wait(lambda: query(db, "SELECT status FROM updates WHERE update_id = ?", update_id) == [("answered",)])
    assert query(db, "SELECT count(*) FROM messages WHERE content = 'important question'") == [(1,)]
