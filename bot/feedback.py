"""Feedback on answers: a 👍/👎 reaction, or /feedback up|down, rewards the memories recalled
for that answer (``Episodes.feedback_for_answer``), so recall learns which ones help.

Positive: 👍 ❤ 🔥 👏; negative: 👎; other emoji mean nothing here. Only a reaction newly added
counts: taking one back does not undo its reward (q is a running average; we keep no history to
undo), and changing 👍 into 👎 gives a 👎. Reactions are silent (Telegram users do not expect a
reply to one); /feedback answers in words. In a group, anyone allowed may rate any answer there:
a group's memory is the group's. Reactions from people who may not use the bot change nothing
and get no refusal.

Reactions come before the gate (group -2, like button presses: the gate passes only messages),
so ``on_reaction`` checks access itself. Telegram sends reactions in private chats always, in
groups only when the bot is an administrator.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from telegram import Chat, ReactionType, ReactionTypeEmoji, Update
from telegram.constants import ChatType

from bot import delivery
from bot.context import OmniContext
from memory.episodes import owner_for

log = logging.getLogger(__name__)

POSITIVE = frozenset({"👍", "❤", "🔥", "👏"})
NEGATIVE = frozenset({"👎"})
_WORDS = {"up": 1.0, "👍": 1.0, "down": 0.0, "👎": 0.0}
USAGE = "Usage: /feedback up or /feedback down rates my last answer (or the answer you reply to)."
THANKS = "Thanks — I'll recall those memories {how} often."
NOTHING_TO_RATE = "Thanks! That answer didn't draw on any memories, so there is nothing to adjust."


def _emoji(reaction: ReactionType) -> str | None:
    # Clients may add the emoji variation selector (U+FE0F) to ❤; Telegram's list has it bare.
    return reaction.emoji.replace("\ufe0f", "") if isinstance(reaction, ReactionTypeEmoji) else None


def reward_of(old: Sequence[ReactionType], new: Sequence[ReactionType]) -> float | None:
    """The reward a change of reactions gives: 1 for a positive emoji newly added, 0 for a
    negative one, None for anything else (removals, other emoji, both kinds at once)."""
    added = {_emoji(r) for r in new} - {_emoji(r) for r in old}
    up, down = bool(added & POSITIVE), bool(added & NEGATIVE)
    if up == down:
        return None
    return 1.0 if up else 0.0


def _owner(chat: Chat, user_id: int) -> str:
    return owner_for(user_id, chat.id, chat.type == ChatType.PRIVATE, f"tg:{chat.id}")


async def on_reaction(update: Update, context: OmniContext) -> None:
    """A reaction on a message: reward the memories recalled for it if it is one of our answers."""
    reaction = update.message_reaction
    assert reaction is not None  # MessageReactionHandler
    user, deps = reaction.user, context.deps
    if user is None or user.is_bot or not deps.access.allows(user.id):
        return  # an anonymous group admin, a bot, or a stranger: nothing, and no refusal
    reward = reward_of(reaction.old_reaction, reaction.new_reaction)
    if reward is None:
        return
    chat = reaction.chat
    # Recorded first: a reaction Telegram delivers again (after a restart) is counted once.
    if not await deps.store.updates.record(update.update_id, chat_id=chat.id, user_id=user.id, payload=None):
        return
    changed = await deps.store.episodes.feedback_for_answer(
        _owner(chat, user.id), chat_id=chat.id, telegram_message_id=reaction.message_id, reward=reward
    )
    await deps.store.updates.finish(update.update_id, "answered")
    log.info("update %s: a reaction rewarded %d memories with %g", update.update_id, changed, reward)


async def cmd_feedback(update: Update, context: OmniContext) -> None:
    """/feedback up|down: rate the chat's last answer, or the answer this command replies to."""
    message, chat, user = update.message, update.effective_chat, update.effective_user
    assert message is not None and chat is not None and user is not None  # the gate
    args = context.args or []
    reward = _WORDS.get(args[0].lower()) if len(args) == 1 else None
    if reward is None:
        await delivery.send_text(context.bot, chat.id, USAGE)
        return
    replied = message.reply_to_message
    ours = replied is not None and replied.from_user is not None and replied.from_user.id == context.bot.id
    changed = await context.deps.store.episodes.feedback_for_answer(
        _owner(chat, user.id),
        chat_id=chat.id,
        telegram_message_id=replied.message_id if ours and replied is not None else None,
        reward=reward,
    )
    text = THANKS.format(how="more" if reward else "less") if changed else NOTHING_TO_RATE
    await delivery.send_text(context.bot, chat.id, text)
