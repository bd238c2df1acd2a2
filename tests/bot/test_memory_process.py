"""The issue's promise, through the real `omni bot`: told something, then /new and a restart,
it still remembers; /forget all then leaves no trace of it in the data directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.bot.conftest import FRIEND, BotProcess, Fakes

CODE_WORD = "zanzibarquokka"


def _system_prompt(fakes: Fakes) -> str:
    return str(fakes.llm.requests[-1]["messages"][0]["content"])


def test_remembers_across_new_and_restart_and_forgets_without_trace(
    start_bot: Callable[..., BotProcess], fakes_in_thread: Fakes, tmp_path: Path
) -> None:
    tg = fakes_in_thread.tg
    first = start_bot()
    tg.push_text(FRIEND, f"my locker code word is {CODE_WORD}")
    tg.wait_for_messages(1, timeout=60)
    tg.push_text(FRIEND, "/new")
    tg.wait_for_messages(2, timeout=60)
    code, _ = first.terminate()
    assert code == 0

    second = start_bot()
    tg.push_text(FRIEND, "what was my locker code word?")
    replies = tg.wait_for_messages(3, timeout=60)
    assert replies[2].text == "echo: what was my locker code word?"
    history = fakes_in_thread.llm.requests[-1]["messages"][1:]
    assert all(CODE_WORD not in str(m["content"]) for m in history), "a fresh session after /new"
    assert CODE_WORD in _system_prompt(fakes_in_thread), "recalled from episodic memory"

    tg.push_text(FRIEND, "/forget all")
    confirm = tg.wait_for_messages(4, timeout=60)[3]
    yes = next(data for text, data in tg.buttons(confirm) if "Yes" in text)
    tg.push_callback(FRIEND, yes, confirm)
    tg.wait_for_messages(5, timeout=60)
    code, _ = second.terminate()
    assert code == 0

    data_dir = tmp_path / "data"
    leftovers = [p for p in data_dir.rglob("*") if p.is_file() and CODE_WORD.encode() in p.read_bytes()]
    assert leftovers == []
