"""Messages with inline buttons: sending one, and the checks every press passes before it may act."""

from __future__ import annotations

import re

from telegram import InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode

from bot.context import OmniContext
from bot.topics import place_of

NOT_YOURS = "Only the person who asked can use these buttons."


async def press(update: Update, context: OmniContext, pattern: re.Pattern[str]) -> re.Match[str] | None:
    """The button's data if the press may act: an allowed user, pressing their own button
    (``pattern`` has an ``asker`` group: the user the buttons were made for)."""
    query = update.callback_query
    assert query is not None  # CallbackQueryHandler
    match = pattern.match(query.data or "")
    if match is None or query.message is None or not context.deps.access.allows(query.from_user.id):
        await query.answer()
        return None
    if int(match["asker"]) != query.from_user.id:
        await query.answer(NOT_YOURS, show_alert=True)
        return None
    return match


async def send_with_buttons(
    context: OmniContext, message: Message, text: str, buttons: InlineKeyboardMarkup | None = None
) -> None:
    """Answer ``message`` (in its forum topic) with ``text`` and ``buttons``."""
    # delivery.send_text has no reply_markup; these texts are built here, valid HTML by construction.
    await context.bot.send_message(
        message.chat.id,
        text,
        parse_mode=ParseMode.HTML,
        reply_markup=buttons,
        message_thread_id=place_of(message).thread_id,
    )
