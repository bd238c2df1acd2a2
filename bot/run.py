"""The bot's lifecycle: open store and agent, replay, poll or serve the webhook, stop gracefully.

``serve(settings)`` is what ``omni bot`` runs: it returns 0 after SIGTERM/SIGINT once updates
stopped coming in and in-flight replies finished (bounded, well within 10 s), or 1 when it cannot
start. ``running(settings)`` is the same bot as an async context manager, for tests and benchmarks.

Start-up order keeps start -> first getUpdates short: store, agent (without importing litellm),
getMe, replay of updates a dead process left open, polling (or, with OMNI_TELEGRAM_WEBHOOK_URL,
the webhook server and ``setWebhook``: bot/webhook.py); only then the slow parts start in the
background (litellm's import via ``agent.warm_up()``, ``setMyCommands``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import signal
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from telegram import BotCommandScopeChat, BotCommandScopeDefault, Update
from telegram.error import TelegramError

from agent import open_agent
from agent.schedule_tools import ScheduleLimits, ScheduleTools
from agent.scheduler import Scheduler, SchedulerConfig
from agent.toolbox import ToolBox
from bot.access import AccessList
from bot.app import POLL_TIMEOUT_S, build_application, tracked_request
from bot.chat import ChatRouter
from bot.commands import ADMIN_COMMANDS, USER_COMMANDS
from bot.context import BotDeps, OmniApplication
from bot.jobs import JobFiring
from bot.send_file import FileSender
from bot.webhook import WebhookServer, WebhookUnavailable, start_webhook
from bot.workers import gone, worker_name
from memory.locks import ConversationLocks
from memory.store import open_store
from omni.settings import Settings

log = logging.getLogger(__name__)

STOP_POLLING_S = 3.0  # stopping the updater confirms the last offset with one short call
DRAIN_S = 5.0  # in-flight replies get this long to finish at shutdown
APP_STOP_S = 1.5
SWEEP_EVERY_S = 2.5  # the most time between two rounds of renewing and taking over claims


@dataclass(frozen=True, slots=True)
class Polling:
    """Long-poll timing; the watchdog restarts polling after ``2 * timeout + margin`` silent s."""

    timeout: float = POLL_TIMEOUT_S
    margin: float = 10.0

    @property
    def stall_after(self) -> float:
        return 2 * self.timeout + self.margin


async def serve(settings: Settings) -> int:
    """Run the bot until SIGTERM/SIGINT; the process exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running(settings):
            await stop.wait()
            log.info("stopping: finishing replies in progress")
    except TelegramError as exc:
        log.error("cannot start the bot: Telegram said %s", exc)
        return 1
    except WebhookUnavailable as exc:
        log.error("cannot start the bot: %s", exc)
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped")
    return 0


@asynccontextmanager
async def running(settings: Settings, polling: Polling = Polling()) -> AsyncIterator[OmniApplication]:
    """The bot, polling or by webhook, for the duration of the block; a graceful stop on the way out."""
    assert settings.telegram_token is not None  # required by the CLI before we get here
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(open_store(settings.database_url))
        # The MCP tools plus send_file, which sends with the bot built below (bot/send_file.py).
        box = ToolBox.from_settings(settings)
        stack.push_async_callback(box.aclose)
        files = FileSender(box, settings.workspace, settings.tool_timeout)
        limits = ScheduleLimits(settings.schedule_max_jobs, settings.schedule_min_interval_s)
        schedules = ScheduleTools(files, store.schedules, default_zone=settings.timezone, limits=limits)
        agent = await stack.enter_async_context(open_agent(settings, store, tools=schedules))

        async def on_failure(update: Update, exc: BaseException) -> None:
            await app.process_error(update, exc if isinstance(exc, Exception) else RuntimeError(exc))

        store.updates.lease = dtm.timedelta(seconds=settings.update_lease_s)
        me = worker_name()
        chats = ChatRouter(store.updates, on_failure=on_failure, locks=ConversationLocks(store.db), owner=me)
        deps = BotDeps(settings, store, agent, AccessList(settings, store), chats, me, schedules=schedules)
        await deps.access.load()
        app = build_application(settings.telegram_token, settings.telegram_api_url, deps)
        files.attach(app.bot)
        firing = JobFiring(app.bot, agent, deps.access, settings.long_answer_messages)
        deps.scheduler = Scheduler(
            store.job_runs,
            firing.fire,
            owner=me,
            missed=firing.missed,
            gone=gone,
            config=SchedulerConfig(lease_s=settings.update_lease_s, grace_s=settings.schedule_grace_s),
        )
        schedules.attach(deps.scheduler.nudge)
        await stack.enter_async_context(app)  # initialize (getMe) ... shutdown
        await app.start()
        webhook: WebhookServer | None = None
        try:
            await _replay(app, deps)
            if settings.telegram_webhook_url:
                webhook = await start_webhook(app, deps, settings.telegram_webhook_url)
            else:
                await _start_polling(app, polling)
                log.info("polling for updates as @%s", app.bot.username)
            agent.warm_up()
            background = [
                asyncio.create_task(_register_commands(app, settings)),
                asyncio.create_task(_keep_claims(app, deps)),
                # Cancelled at shutdown: a run cut off mid-firing is fired again at the next start.
                asyncio.create_task(deps.scheduler.run(), name="scheduler"),
            ]
            if webhook is None:  # Telegram calls us: no connection of ours to go stale
                background.append(asyncio.create_task(_watchdog(app, polling)))
            try:
                yield app
            finally:
                for task in background:
                    task.cancel()
                await asyncio.wait(background)
        finally:
            await _stop(app, deps, webhook)


async def _start_polling(app: OmniApplication, polling: Polling) -> None:
    assert app.updater is not None
    # PTB calls deleteWebhook (drop_pending_updates as below) before the first getUpdates, which
    # fails while a webhook is set: a bot switched back from webhook mode polls, and Telegram
    # hands it the updates it kept meanwhile.
    await app.updater.start_polling(
        timeout=dtm.timedelta(seconds=polling.timeout),
        drop_pending_updates=False,
        # Every type, so message_reaction too: Telegram sends reactions (bot/feedback.py) only to
        # a bot that asks for them, in groups only if it is an administrator there.
        allowed_updates=Update.ALL_TYPES,
        error_callback=lambda exc: log.warning("getUpdates failed: %s", exc),
    )


async def _stop(app: OmniApplication, deps: BotDeps, webhook: WebhookServer | None = None) -> None:
    """Stop taking updates, let in-flight replies finish (bounded), then stop the application.

    The webhook stays registered with Telegram, which keeps updates for us until we are back.
    """
    if webhook is not None:
        await webhook.stop()
    if app.updater is not None and app.updater.running:
        with contextlib.suppress(TimeoutError, TelegramError):
            async with asyncio.timeout(STOP_POLLING_S):
                await app.updater.stop()
    await deps.chats.drain(DRAIN_S)
    if app.running:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(APP_STOP_S):
                await app.stop()


async def _replay(app: OmniApplication, deps: BotDeps) -> None:
    """Queue updates another worker recorded but no longer answers (it was killed, or stopped
    renewing its claims); the gate claims each once, so of several workers one answers it."""
    ledger = deps.store.updates
    await ledger.release_gone(gone)  # a worker of this machine that was killed: at once
    pending = await ledger.pending(deps.boot_id)
    replayable = [p.payload for p in pending if p.payload]
    for payload in replayable:
        update = Update.de_json(payload, app.bot)
        if update is not None:
            await app.update_queue.put(update)
    if replayable:
        log.info("replaying %d unanswered updates another worker left", len(replayable))


async def _keep_claims(app: OmniApplication, deps: BotDeps) -> None:
    """Renew the leases of the updates this worker answers, and take over those of workers
    that stopped renewing theirs: at least three times per lease, so one slow round costs no
    claim, and every few seconds, so an update a killed webhook worker recorded but never
    claimed waits little longer than its grace (memory/updates.py: UNCLAIMED_GRACE)."""
    every = min(deps.store.updates.lease.total_seconds() / 3, SWEEP_EVERY_S)
    while True:
        await asyncio.sleep(every)
        try:
            await deps.store.updates.renew(deps.boot_id)
            await _replay(app, deps)
        except Exception as exc:  # the database away for a moment: the next round tries again
            log.warning("could not renew this worker's claims: %s", exc)


async def _watchdog(app: OmniApplication, polling: Polling) -> None:
    """Restart polling when no getUpdates call has succeeded for too long."""
    request = tracked_request(app)
    while True:
        await asyncio.sleep(min(5.0, polling.stall_after / 4))
        silent = time.monotonic() - request.last_ok
        if silent <= polling.stall_after or app.updater is None:
            continue
        log.warning("no successful getUpdates for %.0f s; restarting polling", silent)
        with contextlib.suppress(TimeoutError, TelegramError, RuntimeError):
            async with asyncio.timeout(STOP_POLLING_S):
                await app.updater.stop()
        try:
            await _start_polling(app, polling)
        except TelegramError as exc:
            log.warning("could not restart polling (%s); trying again", exc)
        request.last_ok = time.monotonic()


async def _register_commands(app: OmniApplication, settings: Settings) -> None:
    """The command menu: users' commands for everyone, plus admins' in each admin's chat."""
    try:
        await app.bot.set_my_commands(USER_COMMANDS, scope=BotCommandScopeDefault())
    except TelegramError as exc:
        log.warning("could not register the command list: %s", exc)
        return
    for admin_id in sorted(settings.admin_ids):
        try:
            await app.bot.set_my_commands(USER_COMMANDS + ADMIN_COMMANDS, scope=BotCommandScopeChat(admin_id))
        except TelegramError as exc:  # e.g. the admin never opened a chat with the bot
            log.info("could not register admin commands for %s: %s", admin_id, exc)
