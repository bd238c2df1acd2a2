"""Reminders, scheduled tasks and background jobs through the real bot (in-process): the model
schedules with its tools, the scheduler fires in real time (due 1-2 s ahead), and the user's
handles on them: /jobs with its buttons, /tz, /bg, /stop <id>, /forget all."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot import buttons
from memory.migrate import upgrade
from memory.schedules import NewJob
from memory.store import open_store
from omni.settings import Settings
from tests.bot.conftest import ADMIN, FRIEND, bot_running, db_path, fakes_in_loop, query, settings_for
from tests.fakes.llm_api import FakeLLM, ScriptedReply
from tests.fakes.telegram_api import FakeTelegram, Sent

pytestmark = pytest.mark.anyio

OTHER = 3003  # a second allowed user
JOB_ID = re.compile(r"#(\d+)")


@asynccontextmanager
async def bot(
    make_settings: Callable[..., Settings], **overrides: Any
) -> AsyncIterator[tuple[FakeTelegram, FakeLLM, Settings]]:
    """The bot in-process, with FRIEND and OTHER allowed."""
    async with fakes_in_loop() as fakes:
        settings = settings_for(make_settings, fakes, allowed_ids=f"{FRIEND},{OTHER}", **overrides)
        async with bot_running(settings):
            yield fakes.tg, fakes.llm, settings


def ahead(seconds: float) -> str:
    """An ISO 8601 time ``seconds`` from now, with its offset, as a model would send it."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def call(name: str, **arguments: object) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def sends(tg: FakeTelegram, chat_id: int, start: str) -> list[Sent]:
    """The messages the bot sent to ``chat_id`` (not edits) whose text starts with ``start``."""
    return [
        s for s in tg.sent if s.method == "sendMessage" and s.chat_id == chat_id and s.text.startswith(start)
    ]


async def say(tg: FakeTelegram, user_id: int, text: str) -> Sent:
    """``text`` from ``user_id`` in their private chat; the bot's next message there."""
    before = len([s for s in tg.sent if s.chat_id == user_id])
    tg.push_text(user_id, text)
    return (await tg.messages(before + 1, chat_id=user_id))[before]


async def press(tg: FakeTelegram, user_id: int, data: str, message: Sent) -> dict[str, Any]:
    """Press a button; the bot's answer to the press."""
    before = len(tg.callback_answers)
    tg.push_callback(user_id, data, message)
    return await tg.callback_answer(before + 1)


def tool_results(llm: FakeLLM) -> list[str]:
    """The tool results the model was sent in its last request."""
    return [m["content"] for m in llm.requests[-1]["messages"] if m.get("role") == "tool"]


async def schedule(tg: FakeTelegram, llm: FakeLLM, user_id: int, *calls: dict[str, Any]) -> list[str]:
    """The user asks; the model calls ``schedule`` (or another tool) with ``calls``, then answers.
    Returns the tool results it got."""
    llm.enqueue(ScriptedReply(tool_calls=list(calls)), ScriptedReply(text="All set."))
    assert (await say(tg, user_id, "please schedule this")).text == "All set."
    return tool_results(llm)


def scheduled_id(result: str) -> int:
    assert result.startswith("Scheduled #"), result
    return int(JOB_ID.search(result)[1])  # type: ignore[index]


async def test_a_reminder_the_model_schedules_arrives_once_at_its_time(
    make_settings: Callable[..., Settings],
) -> None:
    async with bot(make_settings) as (tg, llm, settings):
        (result,) = await schedule(
            tg, llm, FRIEND, call("schedule", kind="reminder", text="drink water", at=ahead(2))
        )
        job = scheduled_id(result)
        assert "reminder 'drink water'" in result
        db = db_path(settings)
        assert query(db, "SELECT user_id, chat_id, kind, state FROM scheduled_jobs") == [
            (FRIEND, FRIEND, "reminder", "active")
        ]
        assert sends(tg, FRIEND, "⏰") == []  # not before its time

        await until(lambda: bool(sends(tg, FRIEND, "⏰")), within=5)
        await asyncio.sleep(0.5)  # anything fired twice would be here by now
        (reminder,) = sends(tg, FRIEND, "⏰")
        assert reminder.text == "⏰ drink water"
        await until(lambda: query(db, "SELECT status FROM job_runs") == [("delivered",)])
        assert query(db, "SELECT job_id, telegram_message_id, attempts FROM job_runs") == [
            (job, reminder.message_id, 1)
        ]
        assert query(db, "SELECT state, fire_count FROM scheduled_jobs") == [("done", 1)]
        assert len(llm.requests) == 2  # a reminder's text goes as is: no model call


async def test_jobs_lists_with_cancel_buttons_only_the_owner_can_press(
    make_settings: Callable[..., Settings],
) -> None:
    async with bot(make_settings) as (tg, llm, settings):
        results = await schedule(
            tg,
            llm,
            FRIEND,
            # Room for the presses below before they are due, on a loaded machine.
            call("schedule", kind="reminder", text="stretch", at=ahead(2.5)),
            call("schedule", kind="reminder", text="call mum", at=ahead(2.5)),
        )
        stretch, mum = (scheduled_id(r) for r in results)

        listing = await say(tg, FRIEND, "/jobs")
        assert (
            f"#{stretch} reminder 'stretch'" in listing.text and f"#{mum} reminder 'call mum'" in listing.text
        )
        assert tg.buttons(listing) == [
            (f"Cancel #{stretch}", f"job:cancel:{FRIEND}:{stretch}"),
            (f"Cancel #{mum}", f"job:cancel:{FRIEND}:{mum}"),
        ]
        other_list = await say(tg, OTHER, "/jobs")
        assert other_list.text == "You have no reminders, scheduled tasks or background jobs."
        assert tg.buttons(other_list) == []

        # Another user pressing it is refused, and nothing changes.
        refused = await press(tg, OTHER, f"job:cancel:{FRIEND}:{stretch}", listing)
        assert refused["text"] == buttons.NOT_YOURS
        # Nor can they forge a button of their own for someone else's job.
        forged = await press(tg, OTHER, f"job:cancel:{OTHER}:{stretch}", listing)
        assert forged["text"] == f"#{stretch} was already finished or cancelled."
        assert query(db_path(settings), "SELECT state FROM scheduled_jobs WHERE id = ?", stretch) == [
            ("active",)
        ]

        answer = await press(tg, FRIEND, f"job:cancel:{FRIEND}:{stretch}", listing)
        assert answer["text"] == f"Cancelled #{stretch}."
        await until(lambda: len(tg.buttons(listing)) == 1)
        edit = [s for s in tg.sent if s.method == "editMessageText" and s.message_id == listing.message_id]
        assert "stretch" not in edit[-1].text and "call mum" in edit[-1].text
        assert tg.buttons(listing) == [(f"Cancel #{mum}", f"job:cancel:{FRIEND}:{mum}")]

        # The other one fires (the scheduler was awake at that time); the cancelled one never.
        await until(lambda: bool(sends(tg, FRIEND, "⏰")), within=5)
        await asyncio.sleep(0.3)
        assert [s.text for s in sends(tg, FRIEND, "⏰")] == ["⏰ call mum"]
        db = db_path(settings)
        assert query(db, "SELECT id, state FROM scheduled_jobs ORDER BY id") == [
            (stretch, "cancelled"),
            (mum, "done"),
        ]
        assert query(db, "SELECT job_id FROM job_runs") == [(mum,)]


async def test_tz_shows_sets_refuses_and_resets_the_users_zone(
    make_settings: Callable[..., Settings],
) -> None:
    async with bot(make_settings) as (tg, llm, settings):
        assert (await say(tg, FRIEND, "/tz")).text.startswith("Your time zone is UTC (it is ")
        await say(tg, FRIEND, "what time is it?")
        assert "(UTC, UTC+0000)" in llm.requests[-1]["messages"][0]["content"]

        berlin = datetime.now(ZoneInfo("Europe/Berlin"))
        set_reply = await say(tg, FRIEND, "/tz Europe/Berlin")
        assert set_reply.text.startswith(f"Your time zone is Europe/Berlin (it is {berlin:%a} {berlin.day} ")
        assert f"{berlin.tzname()} there)" in set_reply.text
        assert query(db_path(settings), "SELECT timezone FROM users WHERE id = ?", FRIEND) == [
            ("Europe/Berlin",)
        ]
        await say(tg, FRIEND, "and now?")
        system = llm.requests[-1]["messages"][0]["content"]
        berlin = datetime.now(ZoneInfo("Europe/Berlin"))
        assert f"({berlin.tzname()}, UTC{berlin:%z})" in system
        assert f"{berlin:%A, %d %B %Y}" in system
        # Another user's prompt keeps the default.
        await say(tg, OTHER, "hello")
        assert "(UTC, UTC+0000)" in llm.requests[-1]["messages"][0]["content"]

        bad = await say(tg, FRIEND, "/tz Mars/Olympus")
        assert bad.text.startswith("'Mars/Olympus' is not a time zone; use an IANA name such as")
        assert "Traceback" not in bad.text
        assert query(db_path(settings), "SELECT timezone FROM users WHERE id = ?", FRIEND) == [
            ("Europe/Berlin",)
        ]

        assert (await say(tg, FRIEND, "/tz default")).text.startswith("Your time zone is UTC (it is ")
        assert query(db_path(settings), "SELECT timezone FROM users WHERE id = ?", FRIEND) == [(None,)]
        await say(tg, FRIEND, "back?")
        assert "(UTC, UTC+0000)" in llm.requests[-1]["messages"][0]["content"]


async def test_bg_runs_outside_the_chat_queue_and_delivers_with_a_header(
    make_settings: Callable[..., Settings],
) -> None:
    async with bot(make_settings) as (tg, llm, settings):
        llm.enqueue(ScriptedReply(text="Your notes are about **tea**.", delay=2.0))
        started = await say(tg, FRIEND, "/bg summarise my notes")
        match = re.search(r"as job #(\d+)", started.text)
        assert match, started.text
        job = int(match[1])
        assert f"/stop {job}" in started.text
        await llm.wait_for_requests(1)
        assert llm.requests[0]["messages"][-1] == {"role": "user", "content": "summarise my notes"}

        # The chat stays responsive while the task works: answered before the task's answer.
        assert (await say(tg, FRIEND, "are you there?")).text == "echo: are you there?"
        listing = await say(tg, FRIEND, "/jobs")
        assert listing.text.startswith(f"▶️ #{job} running since ") and "summarise my notes" in listing.text
        assert tg.buttons(listing) == [(f"Stop #{job}", f"job:stop:{FRIEND}:{job}")]
        assert not sends(tg, FRIEND, "✅")

        await until(lambda: bool(sends(tg, FRIEND, "✅")), within=5)
        header = sends(tg, FRIEND, "✅")[0]
        assert header.text == f"✅ <b>Job #{job}</b>: summarise my notes"
        await until(lambda: "Your notes are about <b>tea</b>." in tg.texts(FRIEND))  # the header goes first
        result = await tg.messages(1, chat_id=FRIEND)
        body = result[result.index(header) + 1]
        assert body.text == "Your notes are about <b>tea</b>."
        db = db_path(settings)
        await until(lambda: query(db, "SELECT status FROM job_runs") == [("delivered",)])
        assert query(db, "SELECT job_id, telegram_message_id FROM job_runs") == [(job, body.message_id)]
        # Its own session, under the chat's key: the question and the answer are kept there.
        assert query(
            db,
            "SELECT m.role, m.content FROM messages m JOIN sessions s ON s.id = m.session_id "
            "JOIN chats c ON c.id = s.chat_id WHERE c.key = ? ORDER BY m.id",
            f"tg:{FRIEND}:job{job}",
        ) == [("user", "summarise my notes"), ("assistant", "Your notes are about **tea**.")]
        assert (await say(tg, FRIEND, "/jobs")).text.startswith("You have no reminders")


async def test_stop_a_running_bg_job_delivers_nothing_and_records_it(
    make_settings: Callable[..., Settings],
) -> None:
    async with bot(make_settings) as (tg, llm, settings):
        llm.enqueue(ScriptedReply(text="too late", delay=1.5))
        started = await say(tg, FRIEND, "/bg count the stars")
        job = int(re.search(r"as job #(\d+)", started.text)[1])  # type: ignore[index]
        await llm.wait_for_requests(1)

        assert (await say(tg, OTHER, f"/stop {job}")).text == f"You have no job #{job}."
        assert (await say(tg, FRIEND, "/stop 999")).text == "You have no job #999."
        assert (await say(tg, FRIEND, f"/stop {job}")).text == f"Stopped job #{job}."
        db = db_path(settings)
        # Recorded by the time the user is told: /jobs right after no longer shows it.
        assert query(db, "SELECT error, telegram_message_id FROM job_runs") == [("stopped by the user", None)]
        assert query(db, "SELECT state FROM scheduled_jobs") == [("done",)]
        assert (await say(tg, FRIEND, "/jobs")).text.startswith("You have no reminders")
        await asyncio.sleep(1.8)  # past the model's answer: none of it comes
        assert not sends(tg, FRIEND, "✅") and "too late" not in tg.texts()
        assert not [t for t in tg.texts(FRIEND) if "could not run" in t]
        assert (await say(tg, FRIEND, f"/stop {job}")).text == f"Job #{job} has already finished."


async def test_a_scheduled_task_asks_the_agent_in_its_own_session(
    make_settings: Callable[..., Settings],
) -> None:
    async with bot(make_settings) as (tg, llm, settings):
        await say(tg, FRIEND, "/tz Asia/Tokyo")
        (result,) = await schedule(
            tg, llm, FRIEND, call("schedule", kind="task", text="summarise my day", at=ahead(2))
        )
        job = scheduled_id(result)
        assert "task 'summarise my day'" in result and "JST" in result
        asked_before = len(llm.requests)

        await until(lambda: bool(sends(tg, FRIEND, "✅")), within=5)
        await until(lambda: "echo: summarise my day" in tg.texts(FRIEND))
        assert len(llm.requests) == asked_before + 1
        request = llm.requests[-1]["messages"]
        assert request[-1] == {"role": "user", "content": "summarise my day"}
        assert "please schedule this" not in json.dumps(request)  # not the chat's conversation
        assert "(JST, UTC+0900)" in request[0]["content"]  # the owner's zone, as in the chat
        texts = [t for t in tg.texts(FRIEND) if t.startswith("✅") or t.startswith("echo")]
        assert texts == [f"✅ <b>Job #{job}</b>: summarise my day", "echo: summarise my day"]
        db = db_path(settings)
        await until(lambda: query(db, "SELECT status FROM job_runs") == [("delivered",)])
        assert query(
            db,
            "SELECT count(*) FROM messages m JOIN sessions s ON s.id = m.session_id "
            "JOIN chats c ON c.id = s.chat_id WHERE c.key = ?",
            f"tg:{FRIEND}:job{job}",
        ) == [(2,)]


async def test_jobs_missed_while_down_fire_or_are_reported_once_at_start(
    make_settings: Callable[..., Settings],
) -> None:
    async with fakes_in_loop() as fakes:
        settings = settings_for(make_settings, fakes)
        await asyncio.to_thread(upgrade, settings.database_url)
        now = datetime.now(UTC)
        async with open_store(settings.database_url) as store:
            ids = []
            for text, due in (
                ("water the plants", now - timedelta(minutes=20)),
                ("feed the cat", now - timedelta(minutes=2)),
            ):
                new = NewJob(
                    FRIEND, FRIEND, None, f"tg:{FRIEND}", "reminder", text, "once", "UTC", due, start_at=due
                )
                ids.append((await store.schedules.create(new)).id)
        tg = fakes.tg
        async with bot_running(settings):
            await until(lambda: len(sends(tg, FRIEND, "⏰")) >= 2, within=5)
            await asyncio.sleep(0.5)
            fired, missed = sorted((s.text for s in sends(tg, FRIEND, "⏰")), key=lambda t: "missed" in t)
            late = (now - timedelta(minutes=20)).strftime("%H:%M")
            assert fired == "⏰ feed the cat"
            assert missed.startswith("⏰ I missed your reminder 'water the plants', due ")
            assert missed.endswith(f"{late} UTC, while I was offline.")
            db = db_path(settings)
            await until(lambda: len(query(db, "SELECT status FROM job_runs WHERE status != 'claimed'")) == 2)
            assert query(db, "SELECT job_id, status FROM job_runs ORDER BY job_id") == [
                (ids[0], "missed"),
                (ids[1], "delivered"),
            ]
            assert query(db, "SELECT state FROM scheduled_jobs ORDER BY id") == [("missed",), ("done",)]
        # Started again: nothing is fired or reported a second time.
        async with bot_running(settings):
            await say(tg, FRIEND, "hello")
            await asyncio.sleep(0.3)
            assert len(sends(tg, FRIEND, "⏰")) == 2


async def test_forget_all_deletes_the_users_jobs(make_settings: Callable[..., Settings]) -> None:
    async with bot(make_settings) as (tg, llm, settings):
        await schedule(tg, llm, FRIEND, call("schedule", kind="reminder", text="mine", at=ahead(3600)))
        await schedule(tg, llm, OTHER, call("schedule", kind="reminder", text="theirs", at=ahead(3600)))
        db = db_path(settings)
        assert len(query(db, "SELECT id FROM scheduled_jobs")) == 2

        question = await say(tg, FRIEND, "/forget all")
        (_, yes), _ = tg.buttons(question)
        before = len(tg.sent)
        await press(tg, FRIEND, yes, question)
        assert (await tg.messages(before + 1))[before].text.startswith("Done: I forgot")
        assert query(db, "SELECT user_id, text FROM scheduled_jobs") == [(OTHER, "theirs")]
        assert (await say(tg, FRIEND, "/jobs")).text.startswith("You have no reminders")
        assert "theirs" in (await say(tg, OTHER, "/jobs")).text


async def test_the_tools_reach_only_the_callers_own_jobs(make_settings: Callable[..., Settings]) -> None:
    async with bot(make_settings) as (tg, llm, settings):
        (result,) = await schedule(
            tg, llm, OTHER, call("schedule", kind="reminder", text="secret", at=ahead(3600))
        )
        theirs = scheduled_id(result)

        results = await schedule(
            tg,
            llm,
            FRIEND,
            call("cancel_scheduled", id=theirs),
            call("pause_scheduled", id=theirs),
            call("list_scheduled"),
        )
        missing = f"Error: the user has no scheduled job #{theirs}; call list_scheduled for the numbers"
        assert results == [missing, missing, "No scheduled jobs. (The user's time zone is UTC.)"]
        # Nor an admin: the tools act for whoever is talking, never on someone else's behalf.
        assert await schedule(tg, llm, ADMIN, call("cancel_scheduled", id=theirs)) == [missing]
        assert query(db_path(settings), "SELECT state FROM scheduled_jobs WHERE id = ?", theirs) == [
            ("active",)
        ]
        assert "secret" in (await say(tg, OTHER, "/jobs")).text


async def test_status_counts_everyones_jobs_for_admins(make_settings: Callable[..., Settings]) -> None:
    async with bot(make_settings) as (tg, llm, _):
        await schedule(tg, llm, FRIEND, call("schedule", kind="reminder", text="a", at=ahead(3600)))
        await schedule(
            tg,
            llm,
            OTHER,
            call("schedule", kind="reminder", text="b", at=ahead(3600)),
            call("schedule", kind="task", text="c", every="P1D"),
        )
        status = (await say(tg, ADMIN, "/status")).text
        assert "scheduled jobs: 3 active, 0 paused, of 2 users" in status


async def test_a_forged_stop_button_cannot_stop_someone_elses_job(
    make_settings: Callable[..., Settings],
) -> None:
    # Telegram passes on whatever callback data a client sends: a button "of their own" naming
    # another user's running job must not stop it.
    async with bot(make_settings) as (tg, llm, settings):
        llm.enqueue(ScriptedReply(text="still delivered", delay=1.0))
        started = await say(tg, FRIEND, "/bg count the stars")
        job = int(re.search(r"as job #(\d+)", started.text)[1])  # type: ignore[index]
        await llm.wait_for_requests(1)
        listing = await say(tg, OTHER, "/jobs")
        answer = await press(tg, OTHER, f"job:stop:{OTHER}:{job}", listing)
        assert answer["text"] == f"#{job} is not running here any more."
        await until(lambda: "still delivered" in tg.texts(FRIEND), within=5)
        db = db_path(settings)
        await until(lambda: query(db, "SELECT status FROM job_runs") == [("delivered",)])


async def test_the_stop_button_under_jobs_stops_a_running_job(make_settings: Callable[..., Settings]) -> None:
    async with bot(make_settings) as (tg, llm, settings):
        llm.enqueue(ScriptedReply(text="too late", delay=1.5))
        started = await say(tg, FRIEND, "/bg count the stars")
        job = int(re.search(r"as job #(\d+)", started.text)[1])  # type: ignore[index]
        await llm.wait_for_requests(1)
        listing = await say(tg, FRIEND, "/jobs")
        assert (await press(tg, FRIEND, f"job:stop:{FRIEND}:{job}", listing))["text"] == f"Stopped #{job}."
        db = db_path(settings)
        assert query(db, "SELECT status, error FROM job_runs") == [("failed", "stopped by the user")]
        await until(lambda: tg.current_text(FRIEND, listing.message_id) != listing.text)
        assert tg.current_text(FRIEND, listing.message_id) == (
            "You have no reminders, scheduled tasks or background jobs."
        )
        assert tg.buttons(listing) == []
        await asyncio.sleep(1.2)
        assert "too late" not in tg.texts(FRIEND) and not sends(tg, FRIEND, "✅")


async def test_forget_all_stops_a_running_job_and_keeps_none_of_its_answer(
    make_settings: Callable[..., Settings],
) -> None:
    async with bot(make_settings) as (tg, llm, settings):
        llm.enqueue(ScriptedReply(text="secret answer", delay=1.5))
        await say(tg, FRIEND, "/bg tell me my secret")
        await llm.wait_for_requests(1)
        question = await say(tg, FRIEND, "/forget all")
        (_, yes), _ = tg.buttons(question)
        before = len(tg.sent)
        await press(tg, FRIEND, yes, question)
        assert (await tg.messages(before + 1))[before].text.startswith("Done: I forgot")
        await asyncio.sleep(2.0)  # past the model's answer: none of it arrives or is kept
        assert "secret answer" not in tg.texts() and not sends(tg, FRIEND, "✅")
        db = db_path(settings)
        assert query(db, "SELECT count(*) FROM messages WHERE content LIKE '%secret%'") == [(0,)]
        assert query(db, "SELECT count(*) FROM scheduled_jobs") == [(0,)]
