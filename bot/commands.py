"""Users' commands: /start /help /new /reset /stop /memory /forget /usage, the hint for unknown
ones, and the inline buttons of /memory (paging) and /forget all (confirmation)."""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from telegram import (
    BotCommand,
    CallbackQuery,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
    User,
)
from telegram.constants import ChatType, ParseMode
from telegram.error import TelegramError

from bot import delivery, uploads
from bot.buttons import press, send_with_buttons
from bot.chat import BUSY_NOTICE, Job, enqueue
from bot.context import OmniContext
from bot.job_commands import stop_job
from bot.topics import Place, place_of
from bot.usage import usage_report
from memory.episodes import owner_for
from memory.knowledge import INDEX_FILE, KnowledgeIndex, user_root
from memory.types import EpisodeView

USER_COMMANDS = [
    BotCommand("start", "What I can do"),
    BotCommand("help", "What I can do and your commands"),
    BotCommand("new", "Start a fresh conversation"),
    BotCommand("stop", "Cancel the reply I'm working on, or a job: /stop <id>"),
    BotCommand("memory", "What I remember about you"),
    BotCommand("forget", "Forget a memory: /forget <id> or /forget all"),
    BotCommand("feedback", "Rate my last answer: /feedback up or down (or react 👍/👎 to it)"),
    BotCommand("usage", "Your tokens and cost, last 24 h and 30 days"),
    BotCommand("jobs", "Your reminders, scheduled tasks and background jobs"),
    BotCommand("bg", "Run a task in the background: /bg <task>"),
    BotCommand("tz", "Your time zone, for reminders: /tz Europe/Berlin"),
]
ADMIN_COMMANDS = [
    BotCommand("status", "Uptime, model, users, database"),
    BotCommand("allow", "Let a user in: /allow <user_id>"),
    BotCommand("deny", "Shut a user out: /deny <user_id>"),
    BotCommand("users", "Who uses the bot"),
    BotCommand("model", "Show or switch the model: /model [name]"),
    BotCommand("reload", "Re-read persisted settings"),
    BotCommand("limit", "A user's daily tokens: /limit <user_id> <tokens>|off|default"),
    BotCommand("mode", "In a group: answer every message, or only mentions: /mode all|mentions"),
]


async def reply(update: Update, context: OmniContext, text: str, *, html_text: bool = False) -> None:
    """Answer a command in its chat and forum topic (plain text unless ``html_text``)."""
    if update.effective_chat is not None:
        thread_id = place_of(update.message).thread_id if update.message is not None else None
        await delivery.send_text(
            context.bot, update.effective_chat.id, text, html=html_text, thread_id=thread_id
        )


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
        "I remember what we talk about, even after /new: /memory shows what I keep, /forget removes it.\n\n"
        f"Your user id: <code>{user.id}</code>{' (admin)' if is_admin else ''}\n\n"
        f"<b>Commands</b>\n{_command_lines(is_admin)}"
    )
    await reply(update, context, text, html_text=True)


async def cmd_new(update: Update, context: OmniContext) -> None:
    """/new and /reset: a fresh session, after the chat's earlier messages are answered."""
    chat, message = update.effective_chat, update.message
    assert chat is not None and message is not None

    async def work() -> None:
        # In a forum, the topic's conversation starts afresh; the others go on.
        await context.deps.agent.new_session(place_of(message).session_key, telegram_chat_id=chat.id)
        await reply(update, context, "Started a fresh conversation. What's on your mind?")

    await enqueue(update, context, work)


async def cmd_stop(update: Update, context: OmniContext) -> None:
    """/stop: cancel the reply being worked on in this chat. /stop <id>: cancel that job."""
    chat = update.effective_chat
    assert chat is not None
    if context.args:
        if not context.args[0].lstrip("#").isdigit():
            await reply(update, context, "Use /stop alone for the reply in progress, or /stop <job id>.")
            return
        await reply(update, context, await stop_job(update, context, int(context.args[0].lstrip("#"))))
        return
    # In a forum, the topic /stop was sent in (a message's place; a chat of its own otherwise).
    place = place_of(update.message) if update.message is not None else Place(chat.id)
    if context.deps.chats.stop(place):
        await reply(update, context, "Stopped. I won't finish that reply.")
    else:
        await reply(update, context, "There is nothing to stop right now.")


async def cmd_usage(update: Update, context: OmniContext) -> None:
    """/usage: the caller's calls, tokens and cost over 24 h and 30 days, and today's limit."""
    user = update.effective_user
    assert user is not None
    deps = context.deps
    now = datetime.now(UTC)
    day = await deps.store.usage.totals(user.id, since=now - timedelta(days=1))
    month = await deps.store.usage.totals(user.id, since=now - timedelta(days=30))
    allowance = await deps.agent.limits.allowance(user.id, is_admin=deps.access.is_admin(user.id))
    await reply(update, context, usage_report(day, month, allowance, now), html_text=True)


async def on_unknown_command(update: Update, context: OmniContext) -> None:
    """A command we don't have: a hint, never the LLM."""
    message = update.message
    command = (message.text or "").split()[0] if message is not None else "that"
    await reply(update, context, f"I don't know the command {command}. Send /help to see what I can do.")


# -- memory: /memory, /forget and their buttons ------------------------------------------------
#
# Button presses (callback queries) are handled in group -2, before the gate, which lets only
# messages through; so each press is checked here: the presser may use the bot and is the person
# who asked (their id travels in the callback data).

MEMORY_PAGE = 10  # 10 lines of <= ~200 characters: a page always fits one message
SNIPPET_CHARS = 150
SPEAKER_CHARS = 24
CONFIRM_TTL_S = 300.0  # a "forget everything?" button goes stale after this long, or once used
PAGE_BUTTON = re.compile(r"^mem:(?P<asker>\d+):(?P<offset>\d+)$")
FORGET_BUTTON = re.compile(r"^(?P<action>fa|fc):(?P<asker>\d+):(?P<token>[0-9a-f]+)$")
_EPISODE_ID = re.compile(r"#?(\d{1,18})", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PENDING_KEY = "forget_all"
EMPTY_MEMORY = (
    "I don't remember anything about {whom} yet. As we talk, what is said here becomes memory "
    "I can recall later, even after /new; /memory shows it and /forget removes it."
)
FORGET_USAGE = "Usage: /forget <id> (the number /memory shows), or /forget all"
STALE = "This question has expired. Send /forget all again."


@dataclass(frozen=True, slots=True)
class _PendingForget:
    """An unanswered "forget everything?": valid once, for its token, until ``expires``."""

    token: str
    owner: str
    expires: float  # time.monotonic()


def _owner(chat: Chat, user: User) -> str:
    return owner_for(user.id, chat.id, chat.type == ChatType.PRIVATE, f"tg:{chat.id}")


def _whom(chat: Chat) -> str:
    return "you" if chat.type == ChatType.PRIVATE else "this chat"


def _memories(count: int) -> str:
    return f"{count} memory" if count == 1 else f"{count} memories"


def _shorten(text: str, limit: int) -> str:
    flat = " ".join(_CONTROL.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _memory_line(episode: EpisodeView) -> str:
    speaker = html.escape(_shorten(episode.speaker, SPEAKER_CHARS), quote=False)
    text = html.escape(_shorten(episode.text, SNIPPET_CHARS), quote=False)
    return f"<code>#{episode.id}</code> {episode.created_at:%Y-%m-%d} {speaker}: {text}"


async def _memory_view(
    context: OmniContext, chat: Chat, user: User, offset: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    """One page of /memory (HTML) and its paging buttons, starting ``offset`` episodes in."""
    owner, episodes = _owner(chat, user), context.deps.store.episodes
    page, total = await episodes.listing(owner, limit=MEMORY_PAGE, offset=offset)
    if not page and total:  # paged past the end (memories were forgotten meanwhile)
        offset = (total - 1) // MEMORY_PAGE * MEMORY_PAGE
        page, total = await episodes.listing(owner, limit=MEMORY_PAGE, offset=offset)
    if not page:
        return html.escape(EMPTY_MEMORY.format(whom=_whom(chat))), None
    head = f"<b>What I remember about {_whom(chat)}</b> ({offset + 1}–{offset + len(page)} of {total})"
    foot = "Forget one with /forget &lt;id&gt;, or everything with /forget all."
    text = "\n".join([head, *(_memory_line(e) for e in page), "", foot])
    buttons = []
    if offset > 0:
        buttons.append(InlineKeyboardButton("‹ newer", callback_data=f"mem:{user.id}:{offset - MEMORY_PAGE}"))
    if offset + len(page) < total:
        buttons.append(InlineKeyboardButton("older ›", callback_data=f"mem:{user.id}:{offset + len(page)}"))
    return text, InlineKeyboardMarkup([buttons]) if buttons else None


async def cmd_memory(update: Update, context: OmniContext) -> None:
    """/memory: what the bot remembers about the caller (a group: about the group), paged."""
    chat, user, message = update.effective_chat, update.effective_user, update.message
    assert chat is not None and user is not None and message is not None
    text, buttons = await _memory_view(context, chat, user, 0)
    await send_with_buttons(context, message, text, buttons)


async def cmd_forget(update: Update, context: OmniContext) -> None:
    """/forget <id>: delete one of the caller's memories. /forget all: ask first, with buttons."""
    chat, user = update.effective_chat, update.effective_user
    assert chat is not None and user is not None
    args = context.args or []
    if len(args) == 1 and args[0].lower() == "all":
        assert update.message is not None  # a command is a message
        await _ask_forget_all(context, update.message, user)
        return
    match = _EPISODE_ID.fullmatch(args[0]) if len(args) == 1 else None
    if match is None:
        await reply(update, context, FORGET_USAGE)
        return
    episode_id = int(match.group(1))
    if await context.deps.store.episodes.forget(_owner(chat, user), episode_id):
        await reply(update, context, f"Forgotten: 1 memory (#{episode_id}).")
    else:
        await reply(update, context, f"Memory #{episode_id} not found. /memory lists yours with their ids.")


async def _ask_forget_all(context: OmniContext, message: Message, user: User) -> None:
    chat = message.chat
    owner = _owner(chat, user)
    _, total = await context.deps.store.episodes.listing(owner, limit=1)
    token = secrets.token_hex(4)
    assert context.user_data is not None  # PTB keeps user_data for every update with a sender
    context.user_data[_PENDING_KEY] = _PendingForget(token, owner, time.monotonic() + CONFIRM_TTL_S)
    buttons = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("Yes, forget everything", callback_data=f"fa:{user.id}:{token}"),
                InlineKeyboardButton("Cancel", callback_data=f"fc:{user.id}:{token}"),
            ]
        ]
    )
    text = (
        f"Forget everything I remember about {_whom(chat)} ({_memories(total)}) and our conversation "
        "history? This cannot be undone."
    )
    await send_with_buttons(context, message, text, buttons)


async def on_memory_page(update: Update, context: OmniContext) -> None:
    """The "older ›" / "‹ newer" buttons under /memory: show that page in the same message."""
    match = await press(update, context, PAGE_BUTTON)
    if match is None:
        return
    query = update.callback_query
    assert query is not None and query.message is not None  # checked by press
    text, buttons = await _memory_view(context, query.message.chat, query.from_user, int(match["offset"]))
    await query.answer()
    with contextlib.suppress(TelegramError):  # "message is not modified": a double press
        await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=buttons)


async def on_forget_button(update: Update, context: OmniContext) -> None:
    """The "Yes, forget everything" / "Cancel" buttons under /forget all: valid once, for minutes."""
    match = await press(update, context, FORGET_BUTTON)
    if match is None:
        return
    query = update.callback_query
    assert query is not None and context.user_data is not None
    pending = context.user_data.get(_PENDING_KEY)
    if (
        not isinstance(pending, _PendingForget)
        or pending.token != match["token"]
        or time.monotonic() > pending.expires
    ):
        await query.answer(STALE, show_alert=True)
        with contextlib.suppress(TelegramError):
            await query.edit_message_reply_markup(None)
        return
    del context.user_data[_PENDING_KEY]
    if match["action"] == "fc":
        await query.answer()
        await query.edit_message_text("Cancelled. I still remember everything.")
        return
    await _forget_all(update, context, query, pending)


def _forget_knowledge(data_dir: Path, user_id: int) -> None:
    """Drop the knowledge index's copies of the user's workspace files (the skills server
    builds that index; there is nothing to drop when it never did)."""
    path = data_dir / INDEX_FILE
    if path.exists():
        with KnowledgeIndex(path) as index:
            index.forget_root(user_root(user_id))


async def _forget_all(
    update: Update, context: OmniContext, query: CallbackQuery, pending: _PendingForget
) -> None:
    """Forget in the chat's order, after the replies being worked on (they would write more)."""
    assert query.message is not None
    chat = query.message.chat
    # A message over 48 hours old comes without its thread: then the chat's own conversation.
    place = place_of(query.message) if isinstance(query.message, Message) else Place(chat.id)
    deps = context.deps

    async def work() -> None:
        forgotten = await deps.store.episodes.forget_all(pending.owner)
        if pending.owner.startswith("user:"):  # their workspace folder's copies in the index
            user_id = int(pending.owner.removeprefix("user:"))
            await asyncio.to_thread(_forget_knowledge, deps.settings.data_dir, user_id)
            await asyncio.to_thread(uploads.forget, deps.settings.workspace, user_id)  # what they sent
            if deps.scheduler is not None:  # a task running now would write its answer after this
                for run in await deps.store.job_runs.running(user_id):
                    await deps.scheduler.stop(run.job.id)
            await deps.store.schedules.forget(user_id)  # their reminders' and tasks' words too
        # The chat's sessions are gone: start a fresh one (and drop the agent's cached id).
        await deps.agent.new_session(place.session_key, telegram_chat_id=chat.id)
        await query.edit_message_text(f"Done: I forgot {_memories(forgotten)} and our conversation history.")

    if deps.chats.submit(place, Job(update, work)):
        await query.answer("Forgetting…")
    else:
        assert context.user_data is not None
        context.user_data[_PENDING_KEY] = pending  # not done: the button still works
        await query.answer(BUSY_NOTICE, show_alert=True)
