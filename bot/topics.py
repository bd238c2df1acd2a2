"""Where a message belongs: its chat and, in a forum, its topic; each is its own conversation.

A forum topic is a thread of a supergroup (``Message.message_thread_id`` with
``is_topic_message``). Replies in an ordinary group carry a ``message_thread_id`` too (the
thread of the message replied to), but they are one conversation with the group: only forum
topics get their own session. A forum's General topic has no thread id and is the chat's own
session.

Session keys: ``tg:<chat id>`` for a chat, ``tg:<chat id>:<thread id>`` for a topic. The memory
owner (``memory.episodes.owner_for``) is the chat either way: a group's topics share what the
group remembers, and only their conversation windows are apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from telegram import Message


@dataclass(frozen=True, slots=True)
class Place:
    """A chat, or one topic of a forum."""

    chat_id: int
    thread_id: int | None = None

    @property
    def session_key(self) -> str:
        chat = f"tg:{self.chat_id}"
        return chat if self.thread_id is None else f"{chat}:{self.thread_id}"


def place_of(message: Message) -> Place:
    """The conversation ``message`` belongs to."""
    topic = message.message_thread_id if message.is_topic_message else None
    return Place(message.chat.id, topic)
