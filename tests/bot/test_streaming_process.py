"""`omni bot` killed with SIGKILL in the middle of a streamed answer, then started again: the
update is answered exactly once, and no half answer stays in the chat."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bot.format import render
from tests.bot.conftest import FRIEND, BotProcess, Fakes, query
from tests.fakes.llm_api import ScriptedReply
from tests.fakes.telegram_api import BOT_USERNAME

GROUP = -1007777
ANSWER = "The plan, **step by step**:\n\n" + "".join(f"{i}. Do thing {i} well.\n" for i in range(1, 30))


def _wait(condition: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _no_skills(tmp_path: Path) -> str:
    path = tmp_path / "mcp.json"  # the skills server is not needed here; spawning it costs seconds
    path.write_text('{"mcpServers": {"skills": {"disabled": true}}}', encoding="utf-8")
    return str(path)


def test_a_group_answer_killed_mid_stream_is_finished_in_the_same_message(
    start_bot: Callable[..., BotProcess], fakes_in_thread: Fakes, tmp_path: Path
) -> None:
    tg, llm = fakes_in_thread.tg, fakes_in_thread.llm
    # The first attempt streams slowly and is killed; the replay asks again and gets it at once.
    llm.enqueue(ScriptedReply(text=ANSWER, tokens_per_s=15), ScriptedReply(text=ANSWER))
    config = _no_skills(tmp_path)
    first = start_bot(OMNI_MCP_CONFIG=config)
    message = tg.message(FRIEND, f"@{BOT_USERNAME} plan it", GROUP, chat_type="supergroup")
    update_id = tg.push_update({"message": message})
    _wait(lambda: any(s.chat_id == GROUP for s in tg.sent))  # the preview is showing
    preview = next(s for s in tg.sent if s.chat_id == GROUP)
    first.kill()  # SIGKILL: no cleanup at all
    start_bot(OMNI_MCP_CONFIG=config)
    db = tmp_path / "data" / "omni.db"
    _wait(lambda: query(db, "SELECT status FROM updates WHERE update_id = ?", update_id) == [("answered",)])
    final = render(ANSWER)
    # The preview message became the answer: no second message, no half answer left behind.
    assert tg.shown(GROUP) == final
    assert tg.current_text(GROUP, preview.message_id) == final[0]
    assert len(llm.requests) == 2  # the answer was never stored: asked again, once
    assert query(db, "SELECT count(*) FROM kv WHERE key LIKE 'preview:%'") == [(0,)]


def test_a_private_answer_killed_mid_stream_arrives_once(
    start_bot: Callable[..., BotProcess], fakes_in_thread: Fakes, tmp_path: Path
) -> None:
    tg, llm = fakes_in_thread.tg, fakes_in_thread.llm
    llm.enqueue(ScriptedReply(text=ANSWER, tokens_per_s=15), ScriptedReply(text=ANSWER))
    config = _no_skills(tmp_path)
    first = start_bot(OMNI_MCP_CONFIG=config)
    update_id = tg.push_text(FRIEND, "plan it")
    _wait(lambda: bool(tg.drafts_for(FRIEND)))  # the draft is showing
    first.kill()
    start_bot(OMNI_MCP_CONFIG=config)
    db = tmp_path / "data" / "omni.db"
    _wait(lambda: query(db, "SELECT status FROM updates WHERE update_id = ?", update_id) == [("answered",)])
    assert tg.shown(FRIEND) == render(ANSWER)  # drafts vanish; the answer is sent once
    assert [s.method for s in tg.sent if s.chat_id == FRIEND] == ["sendMessage"]
