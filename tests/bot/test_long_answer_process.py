"""`omni bot` killed with SIGKILL between a long answer's summary and its document, then started
again: the document follows, the summary is not sent twice, and the LLM is not asked again."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from bot import long_answer
from tests.bot.conftest import FRIEND, BotProcess, Fakes, query
from tests.bot.test_long_answer import LONG
from tests.fakes.llm_api import ScriptedReply


def _wait(condition: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_killed_between_the_summary_and_the_document_sends_each_once(
    start_bot: Callable[..., BotProcess], fakes_in_thread: Fakes, tmp_path: Path
) -> None:
    tg, llm = fakes_in_thread.tg, fakes_in_thread.llm
    llm.enqueue(ScriptedReply(text=LONG))
    # Telegram makes the document wait (429, retry after 30 s); the process is killed meanwhile.
    tg.fail_for("sendDocument", 60, status=429, retry_after=30)
    no_skills = tmp_path / "mcp.json"  # the skills server is not needed here; spawning it costs seconds
    no_skills.write_text('{"mcpServers": {"skills": {"disabled": true}}}', encoding="utf-8")
    first = start_bot(OMNI_MCP_CONFIG=str(no_skills))
    update_id = tg.push_text(FRIEND, "the whole plan, please")
    db = tmp_path / "data" / "omni.db"
    _wait(lambda: any(method == "sendDocument" for method, _ in list(tg.calls)))
    [(recorded,)] = query(db, "SELECT sent_message_ids FROM messages WHERE role = 'assistant'")
    assert json.loads(recorded) == [tg.sent[0].message_id]  # the summary, recorded before the document
    first.kill()  # SIGKILL: no cleanup at all

    tg.fail_for("sendDocument", 0)  # Telegram takes files again
    start_bot(OMNI_MCP_CONFIG=str(no_skills))
    _wait(lambda: query(db, "SELECT status FROM updates WHERE update_id = ?", update_id) == [("answered",)])
    assert [(s.method, s.text) for s in tg.sent] == [
        ("sendMessage", long_answer.summary(LONG)),
        ("sendDocument", long_answer.CAPTION),
    ]
    assert [upload.data for _, upload, _ in tg.files()] == [LONG.encode("utf-8")]
    assert len(llm.requests) == 1  # the stored answer was replayed, not asked again
    [(stored,)] = query(db, "SELECT sent_message_ids FROM messages WHERE role = 'assistant'")
    assert json.loads(stored) == [s.message_id for s in tg.sent]
