"""`omni bot` killed with SIGKILL between the chunks of a long answer, then started again: the
answer resumes at the first chunk not recorded, and the LLM is not asked again."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.format import render
from tests.bot.conftest import FRIEND, BotProcess, Fakes, query
from tests.fakes.llm_api import ScriptedReply

LONG = "\n\n".join(f"Part {i}. " + " ".join(f"word{i}-{j}" for j in range(350)) for i in range(3))


def _wait(condition: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("accepted", [False, True], ids=["chunk-2-not-taken", "chunk-2-taken-unrecorded"])
def test_killed_between_chunks_resumes_at_the_first_chunk_not_recorded(
    start_bot: Callable[..., BotProcess], fakes_in_thread: Fakes, tmp_path: Path, accepted: bool
) -> None:
    tg, llm = fakes_in_thread.tg, fakes_in_thread.llm
    chunks = render(LONG)
    assert len(chunks) == 3
    llm.enqueue(ScriptedReply(text=LONG))
    # Chunk 2's request hangs: before Telegram took it, or after (the user sees it, the bot never
    # learns its id). Either way chunk 1's id is recorded by then: it is written before chunk 2 goes.
    tg.break_send(2, accepted=accepted, hang=True)
    no_skills = tmp_path / "mcp.json"  # the skills server is not needed here; spawning it costs seconds
    no_skills.write_text('{"mcpServers": {"skills": {"disabled": true}}}', encoding="utf-8")
    first = start_bot(OMNI_MCP_CONFIG=str(no_skills))
    update_id = tg.push_text(FRIEND, "tell me a lot")
    _wait(lambda: tg.broken_sends == 1)
    first.kill()  # SIGKILL: no cleanup at all
    start_bot(OMNI_MCP_CONFIG=str(no_skills))
    db = tmp_path / "data" / "omni.db"
    _wait(lambda: query(db, "SELECT status FROM updates WHERE update_id = ?", update_id) == [("answered",)])
    if accepted:  # the one window left: Telegram took chunk 2 and the process died before its id was written
        assert tg.texts() == [chunks[0], chunks[1], chunks[1], chunks[2]]
    else:
        assert tg.texts() == chunks  # each chunk exactly once, in order
    assert len(llm.requests) == 1  # the stored answer was replayed, not asked again
    [(stored,)] = query(db, "SELECT sent_message_ids FROM messages WHERE role = 'assistant'")
    ids = [s.message_id for s in tg.sent]
    assert json.loads(stored) == [ids[0], *ids[-2:]]  # the messages that carry each chunk now
