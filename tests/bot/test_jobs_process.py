"""The real `omni bot` killed with SIGKILL while a /bg job runs, then started again: the run is
taken over at start (same host, dead pid), the model is asked the task again, and the answer
arrives exactly once."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from tests.bot.conftest import FRIEND, BotProcess, Fakes, query
from tests.fakes.llm_api import ScriptedReply

TASK = "write the quarterly report"


def _wait(condition: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_bg_job_killed_mid_run_is_resumed_at_start_and_answered_once(
    start_bot: Callable[..., BotProcess], fakes_in_thread: Fakes, tmp_path: Path
) -> None:
    tg, llm = fakes_in_thread.tg, fakes_in_thread.llm
    no_skills = tmp_path / "mcp.json"  # the skills server is not needed here; spawning it costs seconds
    no_skills.write_text('{"mcpServers": {"skills": {"disabled": true}}}', encoding="utf-8")
    db = tmp_path / "data" / "omni.db"
    llm.enqueue(ScriptedReply(text="never delivered", delay=60))
    first = start_bot(OMNI_MCP_CONFIG=str(no_skills))
    update_id = tg.push_text(FRIEND, f"/bg {TASK}")
    started = tg.wait_for_messages(1, timeout=60)[0].text
    match = re.search(r"as job #(\d+)", started)
    assert match, started
    job = int(match[1])
    _wait(lambda: len(llm.requests) == 1)  # the task is with the model
    # The command itself is done with (not replayed at start: that would be a second job).
    _wait(lambda: query(db, "SELECT status FROM updates WHERE update_id = ?", update_id) == [("answered",)])
    [(status, claimant)] = query(db, "SELECT status, claimed_by FROM job_runs")
    assert status == "claimed" and f":{first.proc.pid}:" in claimant
    first.kill()  # SIGKILL: no cleanup at all

    llm.enqueue(ScriptedReply(text="The report is **done**."))
    killed_at = time.monotonic()
    second = start_bot(OMNI_MCP_CONFIG=str(no_skills))
    header = f"✅ <b>Job #{job}</b>: {TASK}"
    _wait(lambda: "The report is <b>done</b>." in tg.texts(FRIEND))
    resumed_in = time.monotonic() - killed_at
    time.sleep(1.0)  # anything sent twice would be here by now
    assert tg.texts(FRIEND) == [started, header, "The report is <b>done</b>."]
    asked = [r for r in llm.requests if r["messages"][-1] == {"role": "user", "content": TASK}]
    assert len(asked) == 2 and len(llm.requests) == 2  # asked again, and for nothing else
    body = tg.sent[-1]
    [(status, attempts, message_id, claimant)] = query(
        db, "SELECT status, attempts, telegram_message_id, claimed_by FROM job_runs"
    )
    assert (status, attempts, message_id) == ("delivered", 2, body.message_id)
    assert f":{second.proc.pid}:" in claimant
    assert query(db, "SELECT state, fire_count FROM scheduled_jobs") == [("done", 1)]

    assert resumed_in < 30, resumed_in
    code, _ = second.terminate()
    assert code == 0
    assert "Traceback" not in second.stderr()
