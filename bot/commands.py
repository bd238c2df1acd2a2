"""Users' commands: /start /help /new /reset /stop /usage, and the hint for unknown ones."""

from __future__ import annotations

import html

from telegram import BotCommand, Update

from bot import delivery
from bot.chat import enqueue
from bot.context import OmniContext

USER_COMMANDS = [
    BotCommand("start", "What I can do"),
    BotCommand("help", "What I can do and your commands"),
    BotCommand("new", "Start a fresh conversation"),
    BotCommand("stop", "Cancel the reply I'm working on"),
    BotCommand("usage", "Your tokens and cost"),
]
ADMIN_COMMANDS = [
    BotCommand("status", "Uptime, model, users, database"),
    BotCommand("allow", "Let a user in: /allow <user_id>"),
    BotCommand("deny", "Shut a user out: /deny <user_id>"),
    BotCommand("users", "Who uses the bot"),
    BotCommand("model", "Show or switch the model: /model [name]"),
    BotCommand("reload", "Re-read persisted settings"),
]


async def reply(update: Update, context: OmniContext, text: str, *, html_text: bool = False) -> None:
    """Answer a command in its chat (plain text unless ``html_text``)."""
    if update.effective_chat is not None:
        await delivery.send_text(context.bot, update.effective_chat.id, text, html=html_text)


def _command_lines(is_admin: bool) -> str:
    commands = USER_COMMANDS + (ADMIN_COMMANDS if is_admin else [])
    lines = [f"/{c.command} – {html.escape(c.description)}" for c in commands]
    lines.insert(3, "/reset – the same as /new")
    return "\n".join(lines)


async def cmd_help(update: Update, context: OmniContext) -> None:
    """/start and /help: what the bot does, the user's id, the commands they may use."""
    user = update.effective_user
    assert user is not None  # the gate lets only messages with a sender in
    is_admin = context.deps.access.is_admin(user.id)
    text = (
        f"Hi {html.escape(user.first_name)}! I'm your personal assistant. Write to me and I'll answer; "
        "I remember our conversation until you start a new one.\n\n"
        f"Your user id: <code>{user.id}</code>{' (admin)' if is_admin else ''}\n\n"
        f"<b>Commands</b>\n{_command_lines(is_admin)}"
    )
    await reply(update, context, text, html_text=True)


async def cmd_new(update: Update, context: OmniContext) -> None:
    """/new and /reset: a fresh session, after the chat's earlier messages are answered."""
    chat = update.effective_chat
    assert chat is not None

    async def work() -> None:
        await context.deps.agent.new_session(f"tg:{chat.id}", telegram_chat_id=chat.id)
        await reply(update, context, "Started a fresh conversation. What's on your mind?")
        await context.deps.store.updates.finish(update.update_id, "answered")

    await enqueue(update, context, work)


async def cmd_stop(update: Update, context: OmniContext) -> None:
    """/stop: cancel the reply being worked on in this chat."""
    chat = update.effective_chat
    assert chat is not None
    if context.deps.chats.stop(chat.id):
        await reply(update, context, "Stopped. I won't finish that reply.")
    else:
        await reply(update, context, "There is nothing to stop right now.")


async def cmd_usage(update: Update, context: OmniContext) -> None:
    """/usage: the user's tokens and cost so far."""
    user = update.effective_user
    assert user is not None
    totals = await context.deps.store.usage.totals(user.id)
    if totals.calls == 0:
        await reply(update, context, "You haven't used any tokens yet.")
        return
    tokens = totals.prompt_tokens + totals.completion_tokens
    await reply(
        update,
        context,
        f"You have used {tokens:,} tokens ({totals.prompt_tokens:,} in, {totals.completion_tokens:,} out) "
        f"in {totals.calls:,} model calls, about ${totals.cost:.4f}.",
    )


async def on_unknown_command(update: Update, context: OmniContext) -> None:
    """A command we don't have: a hint, never the LLM."""
    message = update.message
    command = (message.text or "").split()[0] if message is not None else "that"
    await reply(update, context, f"I don't know the command {command}. Send /help to see what I can do.")
