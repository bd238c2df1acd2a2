"""Admins' commands: /status /allow /deny /users /model /reload. Others get a refusal."""

from __future__ import annotations

import functools
import html
import time
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update

from bot.commands import reply
from bot.context import OmniContext
from memory.types import Access
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


@admin_only
async def cmd_status(update: Update, context: OmniContext) -> None:
    """/status: uptime, model, users, sessions, messages today, memory, database size, version."""
    deps = context.deps
    counts = await deps.store.conversations.stats()
    users = await deps.store.users.count()
    episodes = await deps.store.episodes.count()
    extra: dict[str, Any] = await deps.agent.stats()
    lines = [
        f"omni {__version__}",
        f"uptime: {_duration(time.monotonic() - deps.started_at)}",
        f"model: {deps.agent.model}",
        f"users: {users}",
        f"chats: {counts['chats']}, sessions: {counts['sessions']}",
        f"messages: {counts['messages']} ({counts['messages_today']} today)",
        f"memory: {episodes} episodes",
        f"database: {_size(deps.store.database_bytes())}",
        f"replies in progress: {deps.chats.busy()}",
    ]
    lines += [f"{key}: {value}" for key, value in extra.items()]
    for server in deps.agent.tool_servers():
        state = (
            f"{server.tools} tools" if server.state == "ready" else f"{server.state}: {server.error or '-'}"
        )
        lines.append(f"mcp {server.name}: {state}")
    await reply(update, context, "\n".join(lines))


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
