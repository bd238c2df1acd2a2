"""The scheduling tools as the model sees them: offered in Telegram chats, strict with arguments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.loop import ToolProvider
from agent.schedule_tools import ScheduleLimits, ScheduleTools, missed_notice
from agent.types import Turn
from memory import Store
from memory.schedules import NewJob

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # 11:00 in Berlin


class Echo(ToolProvider):
    """The MCP tools, as far as the wrapper cares: one tool, answered by name."""

    async def list_tools(self, turn: Turn) -> list[dict[str, Any]]:
        return [{"type": "function", "function": {"name": "echo", "parameters": {"type": "object"}}}]

    async def call(self, name: str, arguments: dict[str, Any], turn: Turn) -> str:
        return f"echo {arguments}"


def tg(user: int = 5, chat: int | None = None, topic: int | None = None) -> Turn:
    chat = user if chat is None else chat
    key = f"tg:{chat}" if topic is None else f"tg:{chat}:{topic}"
    return Turn(key, "remind me", user_id=user, telegram_chat_id=chat)


@pytest.fixture
def nudges() -> list[int]:
    return []


@pytest.fixture
def tools(store: Store, nudges: list[int]) -> ScheduleTools:
    wrapper = ScheduleTools(
        Echo(),
        store.schedules,
        default_zone="America/New_York",
        limits=ScheduleLimits(max_jobs=3, min_interval_s=300),
        clock=lambda: NOW,
    )
    wrapper.attach(lambda: nudges.append(1))
    return wrapper


def names(tools: list[dict[str, Any]]) -> list[str]:
    return [t["function"]["name"] for t in tools]


async def test_the_tools_are_offered_on_telegram_turns_only(tools: ScheduleTools, store: Store) -> None:
    assert names(await tools.list_tools(Turn("cli:me", "hi"))) == ["echo"]
    await store.schedules.set_timezone(5, "Europe/Berlin")
    offered = await tools.list_tools(tg())
    assert names(offered) == ["echo", "schedule", "list_scheduled", "pause_scheduled", "resume_scheduled",
                              "cancel_scheduled"]  # fmt: skip
    assert "the user's time zone, Europe/Berlin" in offered[1]["function"]["description"]
    assert await tools.call("echo", {"a": 1}, tg()) == "echo {'a': 1}"
    refused = await tools.call("schedule", {"kind": "reminder", "text": "x", "at": "2026-12-24T09:00"},
                               Turn("gw:1", "hi", user_id=5))  # fmt: skip
    assert refused == "Error: schedule works only in a Telegram chat"


async def test_a_reminder_is_stored_for_the_turns_chat_and_topic_in_the_users_zone(
    tools: ScheduleTools, store: Store, nudges: list[int]
) -> None:
    await store.schedules.set_timezone(5, "Europe/Berlin")
    args = {"kind": "reminder", "text": " drink water ", "at": "2026-12-24T09:00"}
    reply = await tools.call("schedule", args, tg(5, chat=-100, topic=42))
    assert reply == "Scheduled #1 reminder 'drink water' — once, at Thu 24 Dec 2026 09:00 CET"
    assert nudges == [1]
    (job,) = await store.schedules.jobs(5)
    assert (job.chat_id, job.thread_id, job.session_key) == (-100, 42, "tg:-100:42")
    assert job.next_run_at == datetime(2026, 12, 24, 8, 0, tzinfo=UTC) and job.timezone == "Europe/Berlin"


async def test_recurring_jobs_say_their_next_run_in_the_default_zone(tools: ScheduleTools) -> None:
    daily = {"kind": "task", "text": "summarise my notes", "cron": "0 9 * * 1"}
    assert await tools.call("schedule", daily, tg()) == (
        "Scheduled #1 task 'summarise my notes' — cron 0 9 * * 1, next Mon 7 Dec 2026 09:00 EST"
    )
    hourly = {"kind": "reminder", "text": "stand up", "every": "PT1H", "at": "", "cron": ""}
    assert await tools.call("schedule", hourly, tg()) == (
        "Scheduled #2 reminder 'stand up' — every 1 h, next Tue 1 Dec 2026 06:00 EST"
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"kind": "alarm", "text": "x", "at": "2026-12-24T09:00"}, "Error: 'kind' must be 'reminder'"),
        ({"kind": "reminder", "text": "  ", "at": "2026-12-24T09:00"}, "Error: 'text' must be"),
        (
            {"kind": "reminder", "text": "x" * 2001, "at": "2026-12-24T09:00"},
            "Error: 'text' is 2001 characters",
        ),
        ({"kind": "reminder", "text": "x", "at": "next friday"}, "Error: 'next friday' is not an ISO 8601"),
        (
            {"kind": "reminder", "text": "x", "at": "2026-11-30T09:00"},
            "Error: '2026-11-30T09:00' is in the past",
        ),
        (
            {"kind": "reminder", "text": "x", "cron": "25 * * *"},
            "Error: '25 * * *' is not a valid cron expression",
        ),
        ({"kind": "reminder", "text": "x", "cron": "* * * * *"}, "Error: '* * * * *' fires every 1 min"),
        ({"kind": "reminder", "text": "x", "every": "PT1M"}, "Error: an interval of 1 min is too short"),
        ({"kind": "reminder", "text": "x", "every": True}, "Error: 'every' must be seconds"),
        ({"kind": "reminder", "text": "x", "cron": "0 9 31 2 *"}, "Error: cron 0 9 31 2 * never fires"),
        ({"kind": "reminder", "text": "x"}, "Error: say when"),
    ],
)
async def test_bad_arguments_get_an_error_the_model_can_act_on(
    tools: ScheduleTools, store: Store, args: dict[str, Any], error: str
) -> None:
    assert (await tools.call("schedule", args, tg())).startswith(error)
    assert await store.schedules.jobs(5) == []


async def test_a_user_may_hold_only_so_many_jobs(tools: ScheduleTools) -> None:
    args = {"kind": "reminder", "text": "x", "every": "P1D"}
    for _ in range(3):
        assert (await tools.call("schedule", args, tg())).startswith("Scheduled")
    refused = await tools.call("schedule", args, tg())
    assert refused == "Error: the user already has 3 scheduled jobs, the most allowed; cancel one first"
    assert (await tools.call("schedule", args, tg(6))).startswith("Scheduled")  # another user's own


async def test_list_pause_resume_and_cancel_touch_only_the_users_own_jobs(
    tools: ScheduleTools, nudges: list[int]
) -> None:
    await tools.call("schedule", {"kind": "reminder", "text": "stretch", "cron": "0 9 * * *"}, tg(5))
    assert (await tools.call("list_scheduled", {}, tg(6))).startswith("No scheduled jobs.")
    for name in ("pause_scheduled", "resume_scheduled", "cancel_scheduled"):
        assert await tools.call(name, {"id": 1}, tg(6)) == (
            "Error: the user has no scheduled job #1; call list_scheduled for the numbers"
        )
    assert await tools.call("list_scheduled", {}, tg(5)) == (
        "1 scheduled (times in America/New_York):\n"
        "#1 reminder 'stretch' — cron 0 9 * * *, next Tue 1 Dec 2026 09:00 EST"
    )
    assert await tools.call("pause_scheduled", {"id": "#1"}, tg(5)) == (
        "Paused #1 reminder 'stretch' — cron 0 9 * * * (paused)"
    )
    assert (
        await tools.call("pause_scheduled", {"id": 1}, tg(5))
        == "Error: job #1 is paused; it cannot be paused"
    )
    assert (await tools.call("resume_scheduled", {"id": 1}, tg(5))).startswith(
        "Resumed #1 reminder 'stretch'"
    )
    assert nudges == [1, 1]  # created, resumed
    assert await tools.call("cancel_scheduled", {"id": 1}, tg(5)) == (
        "Cancelled #1 reminder 'stretch' — cron 0 9 * * * (cancelled)"
    )
    assert (await tools.call("list_scheduled", {}, tg(5))).startswith("No scheduled jobs.")
    assert await tools.call("cancel_scheduled", {"id": "one"}, tg(5)) == (
        "Error: 'id' must be a job's number, as list_scheduled shows it"
    )


async def test_a_missed_run_is_told_in_the_users_zone(store: Store) -> None:
    await store.schedules.create(
        NewJob(5, 5, None, "tg:5", "reminder", "drink water", "once", "Europe/Berlin", NOW, start_at=NOW)
    )
    claimed = await store.job_runs.claim_due(
        NOW + timedelta(hours=2), "w", next_run=lambda job, after: None, lease_s=60, grace_s=600
    )
    (run,) = claimed.missed
    assert missed_notice(run) == (
        "⏰ I missed your reminder 'drink water', due Tue 1 Dec 2026 11:00 CET, while I was offline."
    )
