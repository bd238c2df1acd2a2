"""``send_file``: the assistant sends a file of the user's workspace folder to the chat.

An agent-side tool that the bot adds to the MCP tools (it wraps the agent's ``ToolProvider``),
not a skill: the skills server is a child process without the bot's Telegram connection, and
it serves IDEs and the gateway too, which have no chat to send to. The tool is offered only on
Telegram turns. The file goes out when the model calls the tool, before the answer's text (as
a person says "here it is" after handing it over): pictures as photos, the rest as documents.

Which files: those of the caller's workspace folder, read by ``bot.workspace_file`` (no ``..``,
no absolute path, no symlink, at most Telegram's 50 MB upload limit).

A turn interrupted by a crash after the file went out is asked of the model again at the
restart (its answer was never stored), and the model may send the file a second time: files
sent by a tool are delivered at least once, the answer's text exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from pathlib import Path, PurePosixPath
from typing import Any

from telegram import Bot
from telegram.error import TelegramError

from agent import Turn
from agent.loop import ToolProvider
from agent.tool_wrapper import ToolWrapper
from bot.delivery import Upload, send_upload
from bot.workspace_file import FileRefused, read_file

NAME = "send_file"
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # the Bot API's limit for a file a bot uploads
MAX_PHOTO_BYTES = 10 * 1024 * 1024  # a larger picture goes as a document
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})

DEFINITION: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": NAME,
        "description": (
            "Send a file from the user's workspace folder to this Telegram chat, with an optional "
            "caption: pictures (.jpg, .jpeg, .png, .webp) as photos, any other file as a document. "
            "The path is relative to the workspace folder, as the files tools show it. Use it when "
            "the user asks for a file, or after writing one they should get."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "the file, relative to the workspace folder"},
                "caption": {"type": "string", "description": "a short caption shown under the file"},
            },
            "required": ["path"],
        },
    },
}


class FileSender(ToolWrapper):
    """The agent's tools plus ``send_file`` on Telegram turns."""

    names = frozenset({NAME})

    def __init__(self, inner: ToolProvider | None, workspace: Path, timeout: float) -> None:
        super().__init__(inner)
        self._workspace = workspace
        self._timeout = timeout
        self._bot: Bot | None = None

    def attach(self, bot: Bot) -> None:
        """The bot that sends the files (built after the agent, so given later)."""
        self._bot = bot

    async def own_tools(self, turn: Turn) -> tuple[Hashable, list[dict[str, Any]]] | None:
        if self._bot is None or turn.telegram_chat_id is None:
            return None
        return NAME, [DEFINITION]

    async def own_call(self, name: str, arguments: dict[str, Any], turn: Turn) -> str:
        return await self._send(arguments, turn)

    def own_describe(self, name: str, arguments: dict[str, Any]) -> str:
        return f"📎 sending {PurePosixPath(str(arguments.get('path', ''))).name or 'a file'}…"

    async def _send(self, arguments: dict[str, Any], turn: Turn) -> str:
        path, caption = arguments.get("path"), arguments.get("caption", "")
        if not isinstance(path, str) or not isinstance(caption, str):
            return "Error: send_file takes a string 'path' and an optional string 'caption'"
        if self._bot is None or turn.telegram_chat_id is None:
            return "Error: send_file works only in a Telegram chat"
        try:
            found = await asyncio.to_thread(
                read_file, self._workspace, turn.user_id, turn.is_admin, path, MAX_UPLOAD_BYTES
            )
        except FileRefused as exc:
            return f"Error: {exc}"
        picture = PurePosixPath(found.name).suffix.lower() in PHOTO_SUFFIXES
        photo = picture and len(found.data) <= MAX_PHOTO_BYTES
        upload = Upload(found.name, found.data, caption=caption.strip(), photo=photo)
        chat_id = turn.telegram_chat_id
        try:
            async with asyncio.timeout(self._timeout):
                message = await send_upload(
                    self._bot, chat_id, upload, thread_id=_topic(turn.session_key, chat_id)
                )
        except TimeoutError:
            return f"Error: sending {path!r} took over {self._timeout:.0f} s; it may or may not have arrived"
        except TelegramError as exc:
            return f"Error: Telegram did not take {path!r}: {exc.message}"
        kind = "photo" if message.photo else "document"
        return f"Sent {path!r} to the chat as a {kind} ({len(found.data):,} bytes)."


def _topic(session_key: str, chat_id: int) -> int | None:
    """The forum topic of a turn, from its session key (``bot.topics.Place.session_key``:
    ``tg:<chat>:<topic>``), so the file lands in the topic the question came from."""
    prefix = f"tg:{chat_id}:"
    rest = session_key.removeprefix(prefix)
    return int(rest) if session_key.startswith(prefix) and rest.isdigit() else None
