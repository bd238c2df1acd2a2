"""Messages that are not text: documents, photos, voice notes and audio.

Each goes through the chat's queue like a text (bot/chat.py ``enqueue``), so order, the ledger
and /stop hold for it too. The download is kept in the sender's folder (bot/uploads.py) and the
agent gets a text about it. It is never larger than ``OMNI_MEDIA_MAX_BYTES``, checked against
the size the update declares, the size ``getFile`` reports, and the bytes received (PTB reads
a download whole before writing it, so that last check guards what is kept; the two sizes and
the Bot API's own 20 MB limit guard memory).

- a document is announced by its path, for the files skill; a short text file is quoted whole;
- a photo goes to the model as an image part, when the model supports vision;
- a voice note or audio file is transcribed (``OMNI_TRANSCRIPTION_MODEL``) and answered as
  text, its transcript shown collapsed above the answer.

What cannot be done (no vision, no transcription model, too large) gets a notice instead.
"""

from __future__ import annotations

import asyncio
import html
import io
import logging
from collections.abc import Awaitable

from telegram import Message, Update
from telegram.constants import ChatType

from agent.types import Image
from bot import delivery, uploads
from bot.chat import Closed, answer, enqueue
from bot.context import OmniContext

log = logging.getLogger(__name__)

UNSUPPORTED_NOTICE = "I can read text, documents, photos and voice messages, but not this kind of message."
NO_VISION_NOTICE = (
    "The model I use ({model}) cannot see pictures. Describe it in words, or an admin can "
    "switch to a model with vision (/model)."
)
NO_VOICE_NOTICE = "Voice messages are off here (no transcription model is set). Please write instead."
TOO_LARGE_NOTICE = "That file is too large for me: the limit is {limit}."
NO_WORDS_NOTICE = "I could not make out any words in that recording."
INLINE_MAX_BYTES = 8 * 1024  # a text document up to this size (~2,000 tokens) is quoted in the prompt
TRANSCRIPT_SHOWN = 3500  # characters of a transcript shown above the answer (one message)
_TEXT_TYPES = ("application/json", "application/xml", "application/x-yaml", "application/toml")


class _Capped(io.BytesIO):
    """A download buffer that refuses to grow past ``limit`` (a size the server understated)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, data: bytes) -> int:  # type: ignore[override]  # BytesIO takes any buffer
        if self.tell() + len(data) > self.limit:
            raise uploads.UploadRefused("download over the cap", user_message=_too_large(self.limit))
        return super().write(data)


def _too_large(limit: int) -> str:
    return TOO_LARGE_NOTICE.format(
        limit=f"{limit / (1024 * 1024):.0f} MB" if limit >= 1024 * 1024 else f"{limit} bytes"
    )


async def _download(context: OmniContext, file_id: str, declared: int | None) -> bytes:
    limit = context.deps.settings.media_max_bytes
    if declared is not None and declared > limit:
        raise uploads.UploadRefused("declared size over the cap", user_message=_too_large(limit))
    file = await context.bot.get_file(file_id)
    if file.file_size is not None and file.file_size > limit:
        raise uploads.UploadRefused("file size over the cap", user_message=_too_large(limit))
    buffer = _Capped(limit)
    await file.download_to_memory(buffer)
    return buffer.getvalue()


async def _keep(context: OmniContext, message: Message, name: str, data: bytes) -> str:
    """Save ``data`` in the sender's folder; the path as the sender's tools see it."""
    user = message.from_user
    assert user is not None  # the gate lets only messages with a sender in
    deps = context.deps
    admin = deps.access.is_admin(user.id)
    saved = await asyncio.to_thread(
        uploads.save,
        deps.settings.workspace,
        user.id,
        f"{message.message_id}-{name}",  # unique per chat message, and the same on a replay
        data,
        quota=None if admin else deps.settings.files_quota_bytes,
    )
    # Admins' tools see the whole workspace; everyone else's see their own folder.
    shown = uploads.user_folder(deps.settings.workspace, user.id).relative_to(deps.settings.workspace) / saved
    return (shown if admin else saved).as_posix()


def _caption(message: Message, bot_username: str | None) -> str:
    caption = message.caption or ""
    if message.chat.type != ChatType.PRIVATE and bot_username:
        caption = caption.replace(f"@{bot_username}", "")
    return caption.strip()


def _inline_text(data: bytes, mime_type: str | None) -> str | None:
    """The document's text, when it is short text worth putting in the prompt."""
    texty = mime_type is not None and (mime_type.startswith("text/") or mime_type in _TEXT_TYPES)
    if not texty or len(data) > INLINE_MAX_BYTES:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


async def _document(update: Update, context: OmniContext, message: Message) -> Closed | None:
    document = message.document
    assert document is not None
    data = await _download(context, document.file_id, document.file_size)
    name = uploads.safe_name(document.file_name, "document")
    path = await _keep(context, message, name, data)
    kind = document.mime_type or "unknown type"
    text = f"[I sent you a document, saved in my files as {path} ({len(data)} bytes, {kind}).]"
    inline = _inline_text(data, document.mime_type)
    if inline is not None:
        text += f"\nIts content:\n```\n{inline}\n```"
    else:
        text += "\nRead it with the files tools if you need its content."
    caption = _caption(message, context.bot.username)
    return await answer(update, context, f"{text}\n{caption}" if caption else text)


async def _photo(update: Update, context: OmniContext, message: Message) -> Closed | None:
    deps = context.deps
    if not await deps.agent.sees_images():
        await _notice(context, message, NO_VISION_NOTICE.format(model=deps.agent.model))
        return None
    limit = deps.settings.media_max_bytes
    # The largest size Telegram made of it that fits (sizes come smallest first).
    fitting = [p for p in message.photo if p.file_size is None or p.file_size <= limit]
    if not fitting:
        raise uploads.UploadRefused("every photo size over the cap", user_message=_too_large(limit))
    photo = fitting[-1]
    data = await _download(context, photo.file_id, photo.file_size)
    path = await _keep(context, message, "photo.jpg", data)
    caption = _caption(message, context.bot.username)
    text = f"[A photo, saved in my files as {path}.]" + (f"\n{caption}" if caption else "")
    return await answer(update, context, text, images=(Image(data, "image/jpeg"),))


async def _voice(update: Update, context: OmniContext, message: Message) -> Closed | None:
    deps = context.deps
    model = deps.settings.transcription_model
    if model is None:
        await _notice(context, message, NO_VOICE_NOTICE)
        return None
    sound = message.voice or message.audio
    assert sound is not None
    # Telegram records voice notes as OGG/Opus; the name tells the transcriber the format.
    default = "voice.ogg" if message.voice is not None else "audio.mp3"
    name = uploads.safe_name(message.audio.file_name if message.audio is not None else None, default)
    data = await _download(context, sound.file_id, sound.file_size)
    await _keep(context, message, name, data)
    transcript = (await deps.agent.transcribe(data, filename=name, model=model)).strip()
    if not transcript:
        await _notice(context, message, NO_WORDS_NOTICE)
        return None
    shown = transcript if len(transcript) <= TRANSCRIPT_SHOWN else transcript[:TRANSCRIPT_SHOWN] + "…"
    preface = f"<blockquote expandable>🎤 {html.escape(shown, quote=False)}</blockquote>"
    return await answer(update, context, transcript, preface=preface)


async def _notice(context: OmniContext, message: Message, text: str) -> None:
    await delivery.send_text(context.bot, message.chat.id, text, reply_to=message.message_id)


async def _refusing(work: Awaitable[Closed | None], context: OmniContext, message: Message) -> Closed | None:
    """Run a media job; a file refused (too large, folder full) gets its notice."""
    try:
        return await work
    except uploads.UploadRefused as exc:
        log.info("media refused: %s", exc)
        await _notice(context, message, exc.user_message)
        return None


async def on_media(update: Update, context: OmniContext) -> None:
    """Any message that is not text: queue what we can read, a notice for the rest."""
    message = update.message
    assert message is not None  # the gate lets only messages in
    if message.document is not None:
        handle = _document
    elif message.photo:
        handle = _photo
    elif message.voice is not None or message.audio is not None:
        handle = _voice
    else:
        if message.chat.type == ChatType.PRIVATE:  # in a group, silence rather than noise
            await _notice(context, message, UNSUPPORTED_NOTICE)
        return
    await enqueue(update, context, lambda: _refusing(handle(update, context, message), context, message))
