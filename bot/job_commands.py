"""Users' commands for scheduled and background jobs: /tz, /jobs (with cancel buttons), /bg,
and /stop <id>. The model creates reminders and scheduled tasks with its tools
(agent/schedule_tools.py); these are the user's own handles on them."""

from __future__ import annotations

import contextlib
import html
import re
from datetime import UTC, datetime

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update, User
from telegram.constants import ParseMode
from telegram.error import TelegramError

from agent.schedule import ScheduleError, format_time, zone
from agent.schedule_tools import MAX_TEXT, job_line
from bot.buttons import press, send_with_buttons
from bot.context import BotDeps, OmniContext
from bot.jobs import title
from bot.topics import place_of
from memory.errors import JobLimitReached
from memory.schedules import NewJob

JOB_BUTTON = re.compile(r"^job:(?P<action>cancel|stop):(?P<asker>\d+):(?P<job>\d+)$")
MAX_BUTTONS = 20
TZ_HELP = (
    "Your time zone is {zone} (it is {now} there). Change it with /tz followed by a name from the "
    "tz database, e.g. /tz Europe/Berlin or /tz America/New_York; /tz default goes back to {default}."
)


async def _say(
    update: Update, context: OmniContext, text: str, buttons: InlineKeyboardMarkup | None = None
) -> None:
    """Answer the command's message (HTML, in its forum topic)."""
    if update.message is not None:
        await send_with_buttons(context, update.message, text, buttons)


async def cmd_tz(update: Update, context: OmniContext) -> None:
    """/tz [zone|default]: show or set the caller's time zone (reminders' times, /jobs)."""
    user, deps = update.effective_user, context.deps
    assert user is not None and deps.schedules is not None
    default = deps.settings.timezone
    if context.args:
        name = context.args[0]
        try:
            zone(name if name.lower() != "default" else default)
        except ScheduleError as exc:
            await _say(update, context, html.escape(str(exc), quote=False))
            return
        await deps.store.schedules.set_timezone(user.id, None if name.lower() == "default" else name)
        deps.schedules.zone_changed(user.id)
    current = await deps.schedules.user_zone(user.id)
    now = format_time(datetime.now(UTC), zone(current))
    await _say(
        update, context, html.escape(TZ_HELP.format(zone=current, now=now, default=default), quote=False)
    )


async def _jobs_view(context: OmniContext, user: User) -> tuple[str, InlineKeyboardMarkup | None]:
    deps = context.deps
    assert deps.schedules is not None
    tz = zone(await deps.schedules.user_zone(user.id))
    running = await deps.store.job_runs.running(user.id)
    jobs = await deps.store.schedules.jobs(user.id)
    if not running and not jobs:
        return "You have no reminders, scheduled tasks or background jobs.", None
    lines: list[str] = []
    buttons: list[list[InlineKeyboardButton]] = []
    for run in running:
        lines.append(f"▶️ #{run.job.id} running since {format_time(run.due_at, tz)}: {title(run.job)}")
        if len(buttons) < MAX_BUTTONS:
            data = f"job:stop:{user.id}:{run.job.id}"
            buttons.append([InlineKeyboardButton(f"Stop #{run.job.id}", callback_data=data)])
    for job in jobs:
        lines.append(job_line(job, tz))
        if len(buttons) < MAX_BUTTONS:
            data = f"job:cancel:{user.id}:{job.id}"
            buttons.append([InlineKeyboardButton(f"Cancel #{job.id}", callback_data=data)])
    text = html.escape("\n".join(lines), quote=False)
    return text, InlineKeyboardMarkup(buttons) if buttons else None


async def cmd_jobs(update: Update, context: OmniContext) -> None:
    """/jobs: the caller's reminders, scheduled tasks and running jobs, each with a button."""
    user = update.effective_user
    assert user is not None
    text, buttons = await _jobs_view(context, user)
    await _say(update, context, text, buttons)


async def on_job_button(update: Update, context: OmniContext) -> None:
    """The "Cancel #n" / "Stop #n" buttons under /jobs: only the jobs' owner may press them."""
    match = await press(update, context, JOB_BUTTON)
    if match is None:
        return
    query, deps = update.callback_query, context.deps
    assert query is not None and deps.scheduler is not None
    user, job_id = query.from_user, int(match["job"])
    if match["action"] == "stop":
        outcome = await _stop(deps, user.id, job_id)
        stopped = outcome is not None and outcome[0]
        note = f"Stopped #{job_id}." if stopped else f"#{job_id} is not running here any more."
    else:
        cancelled = await deps.store.schedules.cancel(user.id, job_id)
        note = f"Cancelled #{job_id}." if cancelled else f"#{job_id} was already finished or cancelled."
    await query.answer(note)
    text, buttons = await _jobs_view(context, user)
    with contextlib.suppress(TelegramError):  # "message is not modified": a double press
        await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=buttons)


async def cmd_bg(update: Update, context: OmniContext) -> None:
    """/bg <task>: run a task in the background, outside the chat's queue, and send its answer
    when it is done (a job due now: it survives a restart like any scheduled job)."""
    message, user, deps = update.message, update.effective_user, context.deps
    assert message is not None and user is not None and deps.scheduler is not None
    assert deps.schedules is not None
    task = " ".join(context.args or []).strip()
    if not task:
        await _say(update, context, "Tell me the task: /bg summarise the files in my notes folder")
        return
    if len(task) > MAX_TEXT:
        await _say(update, context, f"That task is too long; keep it under {MAX_TEXT} characters.")
        return
    place = place_of(message)
    now = datetime.now(UTC)
    job = NewJob(
        user_id=user.id,
        chat_id=message.chat.id,
        thread_id=place.thread_id,
        session_key=place.session_key,
        kind="task",
        text=task,
        schedule="once",
        timezone=await deps.schedules.user_zone(user.id),
        next_run_at=now,
        start_at=now,
    )
    try:
        created = await deps.store.schedules.create(job, max_jobs=deps.settings.schedule_max_jobs)
    except JobLimitReached as exc:
        await _say(update, context, html.escape(exc.user_message, quote=False))
        return
    deps.scheduler.nudge()
    await _say(
        update,
        context,
        f"Working on it in the background as job #{created.id}; I'll send the answer here. "
        f"/jobs shows it, /stop {created.id} cancels it.",
    )


async def _stop(deps: BotDeps, user_id: int, job_id: int) -> tuple[bool, bool] | None:
    """Stop the user's job ``job_id``: its run in flight in this process, and all later ones.
    Whether a run was stopped and whether the job was still open; None when the user has no
    such job (the id is the user's to send, a button's data too: only their own is touched)."""
    assert deps.scheduler is not None
    if await deps.store.schedules.get(user_id, job_id) is None:
        return None
    stopped = await deps.scheduler.stop(job_id)
    return stopped, await deps.store.schedules.cancel(user_id, job_id) is not None


async def stop_job(update: Update, context: OmniContext, job_id: int) -> str:
    """/stop <id>: cancel the caller's job ``job_id``, running or scheduled; what to tell them."""
    user, deps = update.effective_user, context.deps
    assert user is not None and deps.scheduler is not None
    running = any(run.job.id == job_id for run in await deps.store.job_runs.running(user.id))
    outcome = await _stop(deps, user.id, job_id)
    if outcome is None:
        return f"You have no job #{job_id}."
    stopped, cancelled = outcome
    if stopped:
        return f"Stopped job #{job_id}."
    if running:  # another worker fires it: its answer still comes, but nothing after it
        return f"Job #{job_id} is running on another worker; it won't run again after this."
    return f"Cancelled job #{job_id}." if cancelled else f"Job #{job_id} has already finished."
