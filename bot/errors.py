"""on_error(): the one place an unexpected exception becomes words for the user."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import delivery
from bot.topics import place_of
from omni.errors import OmniError

log = logging.getLogger(__name__)


def words_for(err: BaseException | None) -> str:
    """What the user is told about ``err``: its own words when it is ours, else a plain apology."""
    return err.user_message if isinstance(err, OmniError) else OmniError.user_message


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the error with its update id, then answer the user with one plain sentence."""
    err = context.error
    update_id = update.update_id if isinstance(update, Update) else None
    if isinstance(err, TelegramError):
        # Telegram refused or failed a call; telling the user would most likely fail too.
        log.error("update %s: Telegram error: %s", update_id, err)
        return
    if isinstance(err, OmniError):
        log.warning("update %s: handled error: %r", update_id, err)
    else:
        log.error("update %s: unhandled error", update_id, exc_info=err)
    text = words_for(err)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            thread_id = place_of(update.message).thread_id if update.message is not None else None
            await delivery.send_text(context.bot, update.effective_chat.id, text, thread_id=thread_id)
        except TelegramError as exc:
            log.error("update %s: could not tell the user about the error: %s", update_id, exc)
