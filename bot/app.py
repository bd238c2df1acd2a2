"""build_application(): the PTB Application with every handler, wired the library's way."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable
from typing import Any

import httpx
from pydantic import SecretStr
from telegram import Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    MessageReactionHandler,
    SimpleUpdateProcessor,
    TypeHandler,
    filters,
)
from telegram.request import HTTPXRequest

from bot import access, admin, chat, commands, errors, feedback, job_commands, media
from bot.context import BotDeps, OmniApplication, OmniContext
from omni.logging import log_context

# Long-poll timeout of getUpdates (seconds); the watchdog allows twice this plus a margin.
POLL_TIMEOUT_S = 10.0


class TrackedRequest(HTTPXRequest):
    """The getUpdates connection; remembers when a call last succeeded, for the watchdog."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.last_ok = time.monotonic()

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        status, body = await super().do_request(*args, **kwargs)
        if status == 200:
            self.last_ok = time.monotonic()
        return status, body


class LoggedUpdates(SimpleUpdateProcessor):
    """PTB's default (one update at a time), with each update's ids on every line it logs.

    Updates from polling, the webhook and the replay at start all pass here; tasks created while
    one is handled (a chat's worker, the typing indicator) inherit its ids.
    """

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        if not isinstance(update, Update):
            await coroutine
            return
        chat = update.effective_chat
        with log_context(update_id=update.update_id, chat_id=chat.id if chat is not None else None):
            await coroutine


def build_application(token: SecretStr, api_url: str, deps: BotDeps) -> OmniApplication:
    """The Application for ``token`` against the Bot API at ``api_url`` (real or a fake)."""
    # Opt into PTB 23's timedelta durations now: PTB 22 warns on every RetryAfter otherwise.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    root = api_url.rstrip("/")
    # One TLS context for both connections: loading the CA bundle takes tens of milliseconds.
    tls = {"verify": httpx.create_ssl_context()}
    poll_request = TrackedRequest(connection_pool_size=1, read_timeout=5.0, httpx_kwargs=tls)
    app: OmniApplication = (
        Application.builder()
        .token(token.get_secret_value())
        .base_url(f"{root}/bot")
        .base_file_url(f"{root}/file/bot")
        .get_updates_request(poll_request)
        .request(HTTPXRequest(connection_pool_size=256, httpx_kwargs=tls))  # PTB's default, + tls
        .context_types(ContextTypes(context=OmniContext))
        .concurrent_updates(LoggedUpdates(1))
        .build()
    )
    app.bot_data["deps"] = deps
    app.bot_data["poll_request"] = poll_request
    # Button presses and reactions come before the gate (which passes only messages); they check
    # access themselves.
    app.add_handler(CallbackQueryHandler(commands.on_memory_page, pattern=commands.PAGE_BUTTON), group=-2)
    app.add_handler(CallbackQueryHandler(commands.on_forget_button, pattern=commands.FORGET_BUTTON), group=-2)
    app.add_handler(
        CallbackQueryHandler(job_commands.on_job_button, pattern=job_commands.JOB_BUTTON), group=-2
    )
    app.add_handler(MessageReactionHandler(feedback.on_reaction), group=-2)
    app.add_handler(TypeHandler(Update, access.gate), group=-1)
    app.add_handler(CommandHandler(["start", "help"], commands.cmd_help))
    app.add_handler(CommandHandler(["new", "reset"], commands.cmd_new))
    app.add_handler(CommandHandler("stop", commands.cmd_stop))
    app.add_handler(CommandHandler("usage", commands.cmd_usage))
    app.add_handler(CommandHandler("jobs", job_commands.cmd_jobs))
    app.add_handler(CommandHandler("bg", job_commands.cmd_bg))
    app.add_handler(CommandHandler("tz", job_commands.cmd_tz))
    app.add_handler(CommandHandler("memory", commands.cmd_memory))
    app.add_handler(CommandHandler("forget", commands.cmd_forget))
    app.add_handler(CommandHandler("feedback", feedback.cmd_feedback))
    app.add_handler(CommandHandler("status", admin.cmd_status))
    app.add_handler(CommandHandler("allow", admin.cmd_allow))
    app.add_handler(CommandHandler("deny", admin.cmd_deny))
    app.add_handler(CommandHandler("users", admin.cmd_users))
    app.add_handler(CommandHandler("model", admin.cmd_model))
    app.add_handler(CommandHandler("reload", admin.cmd_reload))
    app.add_handler(CommandHandler("limit", admin.cmd_limit))
    app.add_handler(CommandHandler("mode", admin.cmd_mode))
    app.add_handler(MessageHandler(filters.COMMAND, commands.on_unknown_command))
    app.add_handler(MessageHandler(filters.TEXT, chat.on_text))
    app.add_handler(MessageHandler(~filters.TEXT, media.on_media))
    app.add_handler(TypeHandler(Update, chat.on_handled), group=1)
    app.add_error_handler(errors.on_error)
    return app


def tracked_request(app: OmniApplication) -> TrackedRequest:
    """The getUpdates request object of ``app`` (what the watchdog watches)."""
    request = app.bot_data["poll_request"]
    assert isinstance(request, TrackedRequest)
    return request
