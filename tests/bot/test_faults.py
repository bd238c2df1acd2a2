"""Faults under load, at reduced size: each runs a scenario of bench/faults.py (the real `omni
bot` as a subprocess against the fakes) and checks what its users got. The full sizes are the
bench's default (``python bench/faults.py``)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memory.errors import StoreLocked
from omni.settings import Settings
from tests.bot.conftest import FRIEND, BotProcess, Fakes, db_path, in_process_bot

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH = ROOT / "bench" / "faults.py"
sys.path.insert(0, str(ROOT))

from bench.faults import DEAD_TASK_PROBLEM  # noqa: E402


def run_scenario(name: str) -> dict[str, Any]:
    """The figures of one quick scenario; the bench's own output on failure."""
    result = subprocess.run(
        [sys.executable, str(BENCH), "--scenario", name, "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.stdout.strip(), result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    [figures] = report["scenarios"]
    figures["output"] = result.stdout + result.stderr[-3000:]
    return figures


def assert_each_message_got_one_reply(figures: dict[str, Any]) -> None:
    assert figures["sent"] > 0
    assert figures["lost"] == 0, figures["output"]
    assert figures["duplicates"] == 0, figures["output"]
    assert figures["unexpected"] == 0, figures["output"]  # no traceback, no raw error text
    assert figures["answered"] + figures["errors"] == figures["sent"], figures["output"]


@pytest.mark.parametrize("name", ["llm_down", "llm_refused"])
def test_while_the_llm_is_down_users_get_a_plain_error_or_a_late_answer_and_then_answers_again(
    name: str,
) -> None:
    figures = run_scenario(name)
    assert_each_message_got_one_reply(figures)
    # Among the checks: an error comes within the retry policy's backoff, a message is sent to
    # the LLM no more times than the policy's attempts, and every message sent after the
    # outage is answered.
    assert figures["problems"] == [], figures["output"]
    assert figures["recovery_s"] is not None and figures["recovery_s"] < 5.0


def test_telegram_429s_and_failing_get_updates_lose_and_double_nothing() -> None:
    figures = run_scenario("telegram")
    assert_each_message_got_one_reply(figures)
    assert figures["errors"] == 0, figures["output"]  # Telegram's hiccups are waited out
    assert figures["problems"] == [], figures["output"]


def test_a_killed_skills_server_is_started_again_and_the_bot_keeps_answering() -> None:
    figures = run_scenario("mcp_kill")
    assert_each_message_got_one_reply(figures)
    assert figures["problems"] == [], figures["output"]
    assert figures["recovery_s"] is not None and figures["recovery_s"] < 10.0


@pytest.fixture(scope="module")
def disk_full() -> dict[str, Any]:
    figures = run_scenario("disk_full")
    if figures["skipped"]:
        pytest.skip(f"no small file system can be mounted here: {figures['skipped']}")
    return figures


def test_a_full_disk_gets_a_clear_error_leaves_the_database_intact_and_recovers(
    disk_full: dict[str, Any],
) -> None:
    assert_each_message_got_one_reply(disk_full)
    assert [p for p in disk_full["problems"] if DEAD_TASK_PROBLEM not in p] == [], disk_full["output"]
    assert any(n.startswith("integrity_check: ok") for n in disk_full["notes"]), disk_full["output"]
    assert disk_full["recovery_s"] is not None


def test_a_disk_filling_up_mid_answer_drops_no_queued_message(disk_full: dict[str, Any]) -> None:
    assert [p for p in disk_full["problems"] if DEAD_TASK_PROBLEM in p] == [], disk_full["output"]


def test_kill9_during_load_then_restart_answers_every_message_exactly_once() -> None:
    figures = run_scenario("kill9")
    assert_each_message_got_one_reply(figures)
    assert figures["errors"] == 0, figures["output"]
    assert figures["problems"] == [], figures["output"]


def test_an_answer_outlasts_a_429_storm_longer_than_five_retries(
    start_bot: Callable[..., BotProcess], fakes_in_thread: Fakes, tmp_path: Path
) -> None:
    tg = fakes_in_thread.tg
    no_skills = tmp_path / "mcp.json"
    no_skills.write_text('{"mcpServers": {"skills": {"disabled": true}}}', encoding="utf-8")
    bot = start_bot(OMNI_MCP_CONFIG=str(no_skills))
    tg.fail_next("sendMessage", 429, retry_after=1, count=6)  # 6 s of flood control in all
    tg.push_text(FRIEND, "are you there?")
    deadline = time.monotonic() + 30
    # Until the answer arrives, or the bot gives it up (bot/errors.py logs the Telegram error).
    while "echo: are you there?" not in tg.texts() and "Telegram error:" not in bot.stderr():
        assert time.monotonic() < deadline, "neither answered nor given up"
        time.sleep(0.05)
    assert tg.texts() == ["echo: are you there?"]


@pytest.mark.anyio
async def test_an_update_the_gate_cannot_record_stops_there_with_one_plain_error(
    make_settings: Callable[..., Settings],
) -> None:
    """PTB goes on to the next handlers after an error in one: the gate must not let an update
    it could not record through (answered without a ledger entry, the failure told twice)."""
    async with in_process_bot(make_settings) as (tg, llm, settings):
        tg.push_text(FRIEND, "warm up")
        await tg.messages(1)
        holder = sqlite3.connect(db_path(settings), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process keeps the write lock past busy_timeout
        try:
            tg.push_text(FRIEND, "are you there?")
            await tg.messages(2)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        tg.push_text(FRIEND, "and now?")
        await tg.messages(3)
        await asyncio.sleep(0.5)  # time for a second reply to the locked-out message, if any
        assert tg.texts() == ["echo: warm up", StoreLocked.user_message, "echo: and now?"]
        assert all("are you there?" not in str(body) for body in llm.requests)
