"""Admins' commands: /status /allow /deny /users /model /reload /limit /mode. Others get a refusal."""

from __future__ import annotations

import asyncio
import functools
import html
import re
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from telegram import Update
from telegram.constants import ChatType

from bot import delivery, format, usage
from bot.commands import reply
from bot.context import OmniContext
from memory.schedules import JobTotals
from memory.types import Access, UserRecord
from omni import __version__
from omni.errors import OmniError

Handler = Callable[[Update, OmniContext], Coroutine[Any, Any, None]]
NOT_ADMIN = "Sorry, that command is for admins only."


def admin_only(handler: Handler) -> Handler:
    """Run ``handler`` for admins; anyone else gets a short refusal (and never the LLM)."""

    @functools.wraps(handler)
    async def wrapper(update: Update, context: OmniContext) -> None:
        user = update.effective_user
        if user is None or not context.deps.access.is_admin(user.id):
            await reply(update, context, NOT_ADMIN)
            return
        await handler(update, context)

    return wrapper


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m {secs}s"


def _size(num: int | None) -> str:
    if num is None:
        return "n/a"
    size = float(num)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


MCP_ERROR_CHARS = 160  # a server's error in /status: enough to recognise, short enough to fit


@admin_only
async def cmd_status(update: Update, context: OmniContext) -> None:
    """/status: uptime, model, users, sessions, messages today, memory, database size, version,
    replies and asyncio tasks in progress, the tool servers, and LLM usage: everyone's totals and
    the top users."""
    deps = context.deps
    counts = await deps.store.conversations.stats()
    users = await deps.store.users.count()
    episodes = await deps.store.episodes.count()
    lines = [
        f"omni {__version__}",
        f"uptime: {_duration(time.monotonic() - deps.started_at)}",
        f"model: {html.escape(deps.agent.model, quote=False)}",
        f"users: {users}",
        f"chats: {counts['chats']}, sessions: {counts['sessions']}",
        f"messages: {counts['messages']} ({counts['messages_today']} today)",
        f"memory: {episodes} episodes",
        f"database: {_size(await deps.store.database_bytes())}",
        f"replies in progress: {deps.chats.busy()}",
        _jobs_line(await deps.store.schedules.totals()),
        # All of this process's asyncio tasks, this command's own among them: one that keeps
        # climbing while the bot is idle is a leak (bench/soak.py reads it).
        f"tasks: {len(asyncio.all_tasks())}",
    ]
    for server in deps.agent.tool_servers():
        error = usage.shorten(server.error or "-", MCP_ERROR_CHARS)
        state = f"{server.tools} tools" if server.state == "ready" else f"{server.state}: {error}"
        lines.append(html.escape(f"mcp {server.name}: {state}", quote=False))
    lines += await _usage_lines(context)
    # One message in practice; split (tags balanced) only if an admin configured dozens of servers.
    if update.effective_chat is not None:
        await delivery.send_chunks(context.bot, update.effective_chat.id, format.split_html("\n".join(lines)))


def _jobs_line(totals: JobTotals) -> str:
    return f"scheduled jobs: {totals.active} active, {totals.paused} paused, of {totals.users} users"


async def _usage_lines(context: OmniContext) -> list[str]:
    deps = context.deps
    now = datetime.now(UTC)
    month_ago = now - timedelta(days=30)
    day = await deps.store.usage.totals(since=now - timedelta(days=1))
    month = await deps.store.usage.totals(since=month_ago)
    top = await deps.store.usage.top_users(since=month_ago, limit=5)
    return usage.status_section(day, month, top, default_limit=deps.agent.limits.default)


def _target(context: OmniContext) -> int | None:
    args = context.args or []
    if len(args) != 1 or not args[0].lstrip("-").isdigit():
        return None
    return int(args[0])


async def _decide(update: Update, context: OmniContext, access: Access) -> None:
    command = "allow" if access == "allowed" else "deny"
    target = _target(context)
    user = update.effective_user
    assert user is not None
    if target is None:
        await reply(update, context, f"Usage: /{command} <user_id> (the number the user got from me)")
        return
    if access == "denied" and context.deps.access.is_admin(target):
        await reply(update, context, f"{target} is an admin (OMNI_ADMIN_IDS); admins can't be denied.")
        return
    await context.deps.access.decide(target, access, by=user.id)
    verb = "may now talk to me" if access == "allowed" else "can no longer talk to me"
    await reply(update, context, f"User {target} {verb}.")


@admin_only
async def cmd_allow(update: Update, context: OmniContext) -> None:
    """/allow <id>: persisted, survives restarts."""
    await _decide(update, context, "allowed")


@admin_only
async def cmd_deny(update: Update, context: OmniContext) -> None:
    """/deny <id>: persisted, beats OMNI_ALLOWED_IDS; admins can't be denied."""
    await _decide(update, context, "denied")


@admin_only
async def cmd_users(update: Update, context: OmniContext) -> None:
    """/users: the people the bot knows, newest activity first."""
    records = await context.deps.store.users.list(limit=50)
    if not records:
        await reply(update, context, "No users yet.")
        return
    lines = []
    for rec in records:
        name = html.escape(rec.display_name or "?") + (
            f" @{html.escape(rec.username)}" if rec.username else ""
        )
        access = rec.access or ("admin" if rec.role == "admin" else "env")
        seen = rec.last_seen_at.strftime("%Y-%m-%d %H:%M") if rec.last_seen_at else "never"
        lines.append(f"<code>{rec.id}</code> {name} – {access}, last seen {seen}")
    await reply(update, context, "<b>Users</b>\n" + "\n".join(lines), html_text=True)


@admin_only
async def cmd_model(update: Update, context: OmniContext) -> None:
    """/model [name]: show the model, or switch to another (persisted)."""
    agent = context.deps.agent
    args = context.args or []
    if not args:
        await reply(
            update, context, f"Current model: {agent.model}\nSwitch with /model <litellm model name>."
        )
        return
    await agent.set_model(args[0])
    await reply(update, context, f"Model switched to {agent.model}. It stays after restarts.")


@admin_only
async def cmd_reload(update: Update, context: OmniContext) -> None:
    """/reload: re-read what can change while running (access list, model, MCP servers file)."""
    deps = context.deps
    decisions = await deps.access.load()
    reloaded = [f"access list: {decisions} /allow and /deny decisions re-read from the database"]
    try:
        changes = await deps.agent.reload()
    except OmniError as exc:  # a broken OMNI_MCP_CONFIG: keep the running servers, say why
        changes = [f"MCP servers file not applied: {exc}"]
    reloaded.append(f"model: {deps.agent.model}")
    reloaded += changes or ["MCP servers: unchanged"]
    await reply(update, context, "Reloaded:\n" + "\n".join(f"• {item}" for item in reloaded))


MODE_USAGE = (
    "Usage: /mode all (answer every message in this group) or /mode mentions (only when "
    "mentioned or replied to)."
)


@admin_only
async def cmd_mode(update: Update, context: OmniContext) -> None:
    """/mode [all|mentions]: show or set whether this group is answered on every message or only
    when it calls on the bot (persisted)."""
    chat, access = update.effective_chat, context.deps.access
    assert chat is not None
    if chat.type == ChatType.PRIVATE:
        await reply(update, context, "/mode is for groups: here I answer every message anyway.")
        return
    args = [a.lower() for a in context.args or []]
    if args not in ([], ["all"], ["mentions"]):
        await reply(update, context, MODE_USAGE)
        return
    if args:
        await access.set_answer_all(chat.id, args[0] == "all")
    every = access.answers_all(chat.id)
    now = "now " if args else ""
    text = (
        f"In this group I {now}answer every message."
        if every
        else f"In this group I {now}answer only when mentioned or replied to."
    )
    await reply(update, context, text if args else f"{text}\n{MODE_USAGE}")


LIMIT_USAGE = (
    "Usage: /limit <user_id> <tokens>|off|default\n"
    "<tokens>: their tokens per UTC day; off: no limit; default: OMNI_USAGE_DAILY_TOKENS again.\n"
    "/limit <user_id> alone shows their limit and today's use."
)
MAX_DAILY_TOKENS = 1_000_000_000  # beyond any real day's use; keeps the column a 32-bit integer
_TOKENS = re.compile(r"\d[\d,_]{0,15}", re.ASCII)  # a day's tokens need few digits
_USER_ID = re.compile(r"\d{1,18}", re.ASCII)


class _BadLimit(ValueError):
    """A /limit argument we can't use; the message says why, to the admin."""


def _limit_value(arg: str) -> int | None:
    """/limit's second argument: tokens a day, 0 for "off", None for "default"."""
    word = arg.lower()
    if word == "default":
        return None
    if word == "off":
        return 0
    if not _TOKENS.fullmatch(arg):
        raise _BadLimit(LIMIT_USAGE)
    tokens = int(arg.replace(",", "").replace("_", ""))
    if tokens == 0:
        raise _BadLimit("For no limit use /limit <user_id> off; to shut a user out, /deny them.")
    if tokens > MAX_DAILY_TOKENS:
        raise _BadLimit(f"That is more than {MAX_DAILY_TOKENS:,} tokens a day; use off for no limit.")
    return tokens


@admin_only
async def cmd_limit(update: Update, context: OmniContext) -> None:
    """/limit <user_id> [<tokens>|off|default]: show or set a user's daily token limit (persisted)."""
    deps = context.deps
    args = context.args or []
    if not 1 <= len(args) <= 2 or not _USER_ID.fullmatch(args[0]):
        await reply(update, context, LIMIT_USAGE)
        return
    target = int(args[0])
    record: UserRecord | None
    if len(args) == 2:
        try:
            value = _limit_value(args[1])
        except _BadLimit as exc:
            await reply(update, context, str(exc))
            return
        record = await deps.store.users.set_daily_limit(target, value)
    else:
        record = await deps.store.users.get(target)
    own = record.daily_token_limit if record is not None else None
    is_admin = deps.access.is_admin(target)
    allowance = await deps.agent.limits.allowance(target, is_admin=is_admin)
    state = usage.limit_state(own, allowance, default=deps.agent.limits.default, is_admin=is_admin)
    name = usage.who(target, record.display_name if record else None, record.username if record else None)
    verb = "now has" if len(args) == 2 else "has"
    await reply(update, context, f"{name} {verb} {state}.", html_text=True)
