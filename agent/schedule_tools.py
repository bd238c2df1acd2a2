"""Tools for reminders and scheduled tasks: ``schedule``, ``list_scheduled``, ``pause_scheduled``,
``resume_scheduled``, ``cancel_scheduled``.

Agent-side (a :class:`ToolProvider` wrapping the MCP tools, as bot/send_file.py's), not a
skill: a job must be delivered to a chat, and the skills server is a child process shared with
IDEs and the gateway, which have no chat to deliver to and no scheduler to fire it. So the tools
are offered on Telegram turns only, and each job is stored with the turn's user, chat, forum
topic and session, and the user's time zone.

The model turns the user's words into ISO 8601 times, cron strings and intervals; the rules in
agent/schedule.py check them and every mistake comes back as a tool result starting with
"Error" that says what to send instead. Replies give the next run in the user's zone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from agent.loop import ToolProvider
from agent.schedule import ScheduleError, build_rule, describe, first_run, format_time, zone
from agent.scheduler import next_run, rule_of
from agent.tool_wrapper import ToolWrapper
from agent.types import Turn
from memory.errors import JobLimitReached
from memory.schedules import Job, JobKind, NewJob, Run, Schedules

SCHEDULE, LIST, PAUSE, RESUME, CANCEL = (
    "schedule",
    "list_scheduled",
    "pause_scheduled",
    "resume_scheduled",
    "cancel_scheduled",
)
NAMES = frozenset({SCHEDULE, LIST, PAUSE, RESUME, CANCEL})
ZONE_TTL_S = 60.0
MAX_TEXT = 2000  # characters of a reminder's text or a task's prompt


@dataclass(frozen=True, slots=True)
class ScheduleLimits:
    max_jobs: int = 50  # active and paused jobs per user (OMNI_SCHEDULE_MAX_JOBS)
    min_interval_s: int = 300  # shortest interval, also between cron runs (OMNI_SCHEDULE_MIN_INTERVAL_S)


def _function(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    parameters = {"type": "object", "properties": properties, "required": required}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


_ID = {"id": {"type": "integer", "description": "the job's number, as list_scheduled shows it"}}


def definitions(user_zone: str, limits: ScheduleLimits) -> list[dict[str, Any]]:
    when = (
        f"Times are ISO 8601; without an offset they are read in the user's time zone, {user_zone}. "
        "Give exactly one of: 'at' alone (once), 'cron' (recurring, five fields: minute hour "
        "day-of-month month day-of-week, in the user's zone), or 'every' (recurring interval: "
        "seconds or an ISO 8601 duration such as PT30M, P1D; with 'at' as its first run, else "
        f"the first run is one interval from now). Intervals under {limits.min_interval_s} s are refused."
    )
    return [
        _function(
            SCHEDULE,
            "Schedule a reminder or a task for the user in this chat. kind 'reminder': the text is "
            "sent to the chat as is at that time. kind 'task': at that time you are asked the text "
            "as a prompt, with your tools and memory, and your answer is sent to the chat (e.g. "
            "'summarise my notes'). " + when,
            {
                "kind": {"type": "string", "enum": ["reminder", "task"]},
                "text": {"type": "string", "description": "the reminder's words, or the task's prompt"},
                "at": {"type": "string", "description": "ISO 8601 date and time, e.g. 2026-12-24T09:00"},
                "cron": {"type": "string", "description": "e.g. '0 9 * * 1-5' (09:00 on weekdays)"},
                "every": {"type": "string", "description": "an interval: seconds or PT30M, PT2H, P1D, P1W"},
            },
            ["kind", "text"],
        ),
        _function(LIST, "List the user's scheduled reminders and tasks with their next run.", {}, []),
        _function(PAUSE, "Pause one of the user's scheduled jobs until resumed.", _ID, ["id"]),
        _function(RESUME, "Resume a paused scheduled job from its next occurrence.", _ID, ["id"]),
        _function(CANCEL, "Cancel one of the user's scheduled jobs for good.", _ID, ["id"]),
    ]


class ScheduleTools(ToolWrapper):
    """The agent's tools plus the scheduling tools on Telegram turns."""

    names = NAMES

    def __init__(
        self,
        inner: ToolProvider | None,
        store: Schedules,
        *,
        default_zone: str,
        limits: ScheduleLimits | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        zone(default_zone)  # a bad OMNI_TIMEZONE fails at start, not at the first reminder
        super().__init__(inner)
        self._store = store
        self._default_zone = default_zone
        self._limits = limits or ScheduleLimits()
        self._clock = clock
        self._nudge: Callable[[], None] | None = None
        self._zones: dict[int, tuple[str, float]] = {}  # user id -> (zone, kept until)

    def attach(self, nudge: Callable[[], None]) -> None:
        """What to call after a job is created or resumed (``Scheduler.nudge``)."""
        self._nudge = nudge

    async def user_zone(self, user_id: int) -> str:
        """The user's zone (/tz), else the default. Kept for a minute: it is read on every
        turn, to tell the model, and changes rarely (``zone_changed`` forgets it at once)."""
        now = time.monotonic()
        known = self._zones.get(user_id)
        if known is not None and known[1] > now:
            return known[0]
        name = await self._store.timezone(user_id) or self._default_zone
        self._zones[user_id] = (name, now + ZONE_TTL_S)
        return name

    def zone_changed(self, user_id: int) -> None:
        self._zones.pop(user_id, None)

    async def own_tools(self, turn: Turn) -> tuple[Hashable, list[dict[str, Any]]] | None:
        if turn.telegram_chat_id is None or turn.user_id is None:
            return None
        user_zone = await self.user_zone(turn.user_id)
        return user_zone, definitions(user_zone, self._limits)

    async def own_call(self, name: str, arguments: dict[str, Any], turn: Turn) -> str:
        if turn.telegram_chat_id is None or turn.user_id is None:
            return f"Error: {name} works only in a Telegram chat"
        try:
            if name == SCHEDULE:
                return await self._schedule(arguments, turn, turn.telegram_chat_id, turn.user_id)
            if name == LIST:
                return await self._list(turn.user_id)
            return await self._change(name, arguments, turn.user_id)
        except ScheduleError as exc:
            return f"Error: {exc}"

    def own_describe(self, name: str, arguments: dict[str, Any]) -> str:
        return "⏰ scheduling…" if name == SCHEDULE else "⏰ checking the schedule…"

    async def _schedule(self, arguments: dict[str, Any], turn: Turn, chat_id: int, user_id: int) -> str:
        kind, text = arguments.get("kind"), arguments.get("text")
        if kind not in ("reminder", "task"):
            return "Error: 'kind' must be 'reminder' (text sent as is) or 'task' (a prompt you answer then)"
        if not isinstance(text, str) or not text.strip():
            return "Error: 'text' must be the reminder's words or the task's prompt"
        if len(text) > MAX_TEXT:
            return f"Error: 'text' is {len(text)} characters; at most {MAX_TEXT}"
        # Models often send the arguments they do not mean as empty strings.
        at, cron, every = (_given(arguments.get(k)) for k in ("at", "cron", "every"))
        for key, value in (("at", at), ("cron", cron)):
            if value is not None and not isinstance(value, str):
                return f"Error: {key!r} must be a string"
        if every is not None and (isinstance(every, bool) or not isinstance(every, str | int | float)):
            return "Error: 'every' must be seconds or an ISO 8601 duration such as PT30M"
        zone_name = await self.user_zone(user_id)
        tz, now = zone(zone_name), self._clock()
        rule = build_rule(
            at=cast("str | None", at),
            cron=cast("str | None", cron),
            every=every,
            tz=tz,
            now=now,
            min_interval_s=self._limits.min_interval_s,
        )
        due = first_run(rule, tz, now)
        if due is None:
            return f"Error: {describe(rule)} never fires; check the expression"
        new = NewJob(
            user_id=user_id,
            chat_id=chat_id,
            thread_id=_topic(turn.session_key, chat_id),
            session_key=turn.session_key,
            kind=cast(JobKind, kind),
            text=text.strip(),
            schedule=rule.schedule,
            timezone=zone_name,
            next_run_at=due,
            cron=rule.cron,
            interval_s=rule.interval_s,
            start_at=rule.start_at,
        )
        try:
            job = await self._store.create(new, max_jobs=self._limits.max_jobs)
        except JobLimitReached as exc:
            return (
                f"Error: the user already has {exc.limit} scheduled jobs, the most allowed; cancel one first"
            )
        if self._nudge is not None:
            self._nudge()
        return f"Scheduled {job_line(job, tz)}"

    async def _list(self, user_id: int) -> str:
        jobs = await self._store.jobs(user_id)
        zone_name = await self.user_zone(user_id)
        if not jobs:
            return f"No scheduled jobs. (The user's time zone is {zone_name}.)"
        tz = zone(zone_name)
        lines = [job_line(job, tz) for job in jobs]
        return "\n".join([f"{len(jobs)} scheduled (times in {zone_name}):", *lines])

    async def _change(self, name: str, arguments: dict[str, Any], user_id: int) -> str:
        raw = arguments.get("id")
        if isinstance(raw, str) and raw.strip().lstrip("#").isdigit():
            raw = int(raw.strip().lstrip("#"))
        if not isinstance(raw, int) or isinstance(raw, bool):
            return "Error: 'id' must be a job's number, as list_scheduled shows it"
        tz = zone(await self.user_zone(user_id))
        job = await self._store.get(user_id, raw)
        if job is None:
            return f"Error: the user has no scheduled job #{raw}; call list_scheduled for the numbers"
        changed: Job | None
        if name == PAUSE:
            changed, verb = await self._store.pause(user_id, raw), "Paused"
        elif name == CANCEL:
            changed, verb = await self._store.cancel(user_id, raw), "Cancelled"
        else:
            changed, verb = await self._resume(job), "Resumed"
        if changed is None:
            return f"Error: job #{raw} is {job.state}; it cannot be {verb.lower()}"
        return f"{verb} {job_line(changed, tz)}"

    async def _resume(self, job: Job) -> Job | None:
        if job.state != "paused":
            return None
        now = self._clock()
        following = job.start_at if job.schedule == "once" else next_run(job, now)
        if following is None or following <= now:
            raise ScheduleError(f"job #{job.id}'s time has passed while it was paused; schedule a new one")
        resumed = await self._store.resume(job.user_id, job.id, following)
        if resumed is not None and self._nudge is not None:
            self._nudge()
        return resumed


def job_line(job: Job, tz: ZoneInfo) -> str:
    """One job as the model and the user read it (also /jobs):
    "#12 reminder 'drink water' — every 2 h, next Thu 24 Dec 2026 09:00 CET"."""
    when = describe(rule_of(job))
    if job.state == "active" and job.next_run_at is not None:
        when += f", {'at' if job.schedule == 'once' else 'next'} {format_time(job.next_run_at, tz)}"
    elif job.state != "active":
        when += f" ({job.state})"
    text = job.text if len(job.text) <= 80 else job.text[:79] + "…"
    return f"#{job.id} {job.kind} {text!r} — {when}"


def missed_notice(run: Run) -> str:
    """What the user is told about a run that was not fired (``Scheduler``'s ``missed``)."""
    tz = _zone_or_utc(run.job.timezone)
    what = f"{run.job.kind} {run.job.text if len(run.job.text) <= 200 else run.job.text[:199] + '…'!r}"
    when = format_time(run.due_at, tz)
    if run.status == "failed":
        return f"⚠️ I could not deliver your {what}, due {when}: it failed several times."
    return f"⏰ I missed your {what}, due {when}, while I was offline."


def _given(value: object) -> object:
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


def _zone_or_utc(name: str) -> ZoneInfo:
    try:
        return zone(name)
    except ScheduleError:
        return ZoneInfo("UTC")


def _topic(session_key: str, chat_id: int) -> int | None:
    """The forum topic of a turn, from its session key (``tg:<chat>:<topic>``)."""
    prefix = f"tg:{chat_id}:"
    rest = session_key.removeprefix(prefix)
    return int(rest) if session_key.startswith(prefix) and rest.isdigit() else None
