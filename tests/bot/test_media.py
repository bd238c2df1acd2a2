"""Media in, through the real bot: documents kept and read, photos to a vision model, voice
notes transcribed; a notice for what cannot be done; /forget all deletes what was sent."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.llm import TRANSCRIPTION_REJECTED
from bot import media, uploads
from omni.settings import Settings
from tests.bot.conftest import ADMIN, FRIEND, bot_running, fakes_in_loop, in_process_bot, settings_for
from tests.fakes.llm_api import FakeLLM, ScriptedReply
from tests.fakes.telegram_api import FakeTelegram, Sent
from tests.fakes.telegram_rules import parse_html

pytestmark = pytest.mark.anyio

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
OGG = b"OggS" + b"\x00" * 500


def push_media(tg: FakeTelegram, user_id: int, extra: dict[str, Any], chat_id: int | None = None) -> int:
    """A user sends a media message; returns its message id."""
    message = tg.message(user_id, None, chat_id, extra=extra)
    tg.push_update({"message": message})
    return int(message["message_id"])


def document(
    tg: FakeTelegram, data: bytes, name: str, mime: str, caption: str | None = None
) -> dict[str, Any]:
    extra: dict[str, Any] = {"document": {**tg.add_file(data), "file_name": name, "mime_type": mime}}
    if caption is not None:
        extra["caption"] = caption
    return extra


def user_texts(llm: FakeLLM) -> list[Any]:
    """The content of the last user message of each completion request."""
    return [[m for m in r["messages"] if m["role"] == "user"][-1]["content"] for r in llm.requests]


async def test_a_text_document_is_kept_and_quoted_in_the_prompt(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings) as (tg, llm, settings):
        mid = push_media(
            tg, FRIEND, document(tg, b"milk\neggs\n", "../../shopping list.txt", "text/plain", "buy?")
        )
        answer = (await tg.messages(1))[0]
        saved = settings.workspace / "users" / str(FRIEND) / "uploads" / f"{mid}-shopping list.txt"
        assert saved.read_bytes() == b"milk\neggs\n"
        prompt = user_texts(llm)[0]
        assert f"uploads/{mid}-shopping list.txt" in prompt and "milk\neggs" in prompt and "buy?" in prompt
        assert answer.text.startswith("echo: [I sent you a document")


async def test_a_document_is_saved_then_read_by_the_files_tool(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {}}))  # the built-in skills server only
    content = b"quarterly figures: 42\n"
    async with fakes_in_loop() as fakes:
        settings = settings_for(make_settings, fakes, mcp_config=config)
        async with bot_running(settings):
            tg, llm = fakes.tg, fakes.llm
            message = tg.message(
                FRIEND, None, extra=document(tg, content, "report.dat", "application/octet-stream")
            )
            name = f"{message['message_id']}-report.dat"
            read = {"name": "skills__read_file", "arguments": {"path": f"uploads/{name}"}}
            llm.enqueue(ScriptedReply(tool_calls=[read]), ScriptedReply(text="It says 42."))
            tg.push_update({"message": message})
            for _ in range(600):  # the skills server starts first
                if "It says 42." in tg.texts(FRIEND):
                    break
                await asyncio.sleep(0.05)
            assert "It says 42." in tg.texts(FRIEND)
            assert f"uploads/{name}" in user_texts(llm)[0] and "quarterly" not in user_texts(llm)[0]
            tool_results = [m for m in llm.requests[1]["messages"] if m["role"] == "tool"]
            assert "quarterly figures: 42" in str(tool_results[0]["content"])


async def test_an_admins_document_is_announced_by_its_workspace_path(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings) as (tg, llm, settings):
        mid = push_media(tg, ADMIN, document(tg, b"\x00\x01", "blob.bin", "application/octet-stream"))
        await tg.messages(1)
        assert f"users/{ADMIN}/uploads/{mid}-blob.bin" in user_texts(llm)[0]
        assert (settings.workspace / "users" / str(ADMIN) / "uploads" / f"{mid}-blob.bin").exists()


async def test_an_oversize_document_is_refused_without_downloading(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings, media_max_bytes=1024) as (tg, llm, settings):
        mid = push_media(tg, FRIEND, document(tg, b"x" * 2048, "big.txt", "text/plain"))
        notice = (await tg.messages(1))[0]
        assert notice.text == media.TOO_LARGE_NOTICE.format(limit="1024 bytes")
        assert notice.params.get("reply_parameters") or notice.params.get("reply_to_message_id")
        assert tg.downloads == [] and llm.requests == []
        assert not (settings.workspace / "users" / str(FRIEND) / "uploads" / f"{mid}-big.txt").exists()
        # The chat goes on.
        tg.push_text(FRIEND, "still there?")
        assert (await tg.messages(2))[1].text == "echo: still there?"


async def test_a_photo_reaches_a_vision_model_as_an_image_part(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings, llm_model="openai/gpt-4o-mini") as (tg, llm, settings):
        sizes = [
            {**tg.add_file(JPEG[:300]), "width": 90, "height": 90},
            {**tg.add_file(JPEG), "width": 800, "height": 800},
        ]
        mid = push_media(tg, FRIEND, {"photo": sizes, "caption": "what is this?"})
        answer = (await tg.messages(1))[0]
        parts = user_texts(llm)[0]
        assert isinstance(parts, list) and parts[0]["type"] == "text" and "what is this?" in parts[0]["text"]
        url = parts[1]["image_url"]["url"]
        assert url == "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()  # the largest size
        assert answer.text.startswith("echo: [A photo")
        assert (
            settings.workspace / "users" / str(FRIEND) / "uploads" / f"{mid}-photo.jpg"
        ).read_bytes() == JPEG
        # The picture was for that turn: the next one sends text only.
        tg.push_text(FRIEND, "thanks")
        await tg.messages(2)
        assert all(isinstance(m["content"], str) for m in llm.requests[1]["messages"])


async def test_a_photo_to_a_model_without_vision_gets_a_notice(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings) as (tg, llm, _):
        push_media(tg, FRIEND, {"photo": [{**tg.add_file(JPEG), "width": 9, "height": 9}]})
        notice = (await tg.messages(1))[0]
        assert notice.text == media.NO_VISION_NOTICE.format(model="openai/fake-model")
        assert llm.requests == [] and tg.downloads == []


async def test_a_voice_note_is_transcribed_answered_and_its_transcript_shown_collapsed(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings, transcription_model="openai/whisper-1") as (tg, llm, settings):
        llm.transcript = "remind me <to> buy milk"
        mid = push_media(tg, FRIEND, {"voice": {**tg.add_file(OGG), "duration": 2, "mime_type": "audio/ogg"}})
        transcript, answer = await tg.messages(2)
        assert transcript.parse_mode == "HTML"
        assert transcript.text == "<blockquote expandable>🎤 remind me &lt;to&gt; buy milk</blockquote>"
        assert parse_html(transcript.text) == "🎤 remind me <to> buy milk"
        assert parse_html(answer.text) == "echo: remind me <to> buy milk"
        assert llm.transcriptions == [("whisper-1", "voice.ogg", OGG)]
        assert (settings.workspace / "users" / str(FRIEND) / "uploads" / f"{mid}-voice.ogg").exists()


async def test_an_audio_file_is_transcribed_under_its_own_name(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings, transcription_model="openai/whisper-1") as (tg, llm, _):
        audio = {**tg.add_file(b"ID3" + b"\x00" * 300), "duration": 3, "file_name": "../memo 1.mp3"}
        push_media(tg, FRIEND, {"audio": audio})
        await tg.messages(2)
        assert [name for _, name, _ in llm.transcriptions] == ["memo 1.mp3"]


async def test_a_refused_transcription_is_told_in_words_and_the_chat_goes_on(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings, transcription_model="openai/whisper-1") as (tg, llm, _):
        llm.transcription_status = 400
        push_media(tg, FRIEND, {"voice": {**tg.add_file(OGG), "duration": 2}})
        assert (await tg.messages(1))[0].text == TRANSCRIPTION_REJECTED
        assert llm.requests == []
        tg.push_text(FRIEND, "hello?")
        assert (await tg.messages(2))[1].text == "echo: hello?"


async def test_a_voice_note_without_a_transcription_model_gets_a_notice(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings) as (tg, llm, _):
        push_media(tg, FRIEND, {"voice": {**tg.add_file(OGG), "duration": 2}})
        assert (await tg.messages(1))[0].text == media.NO_VOICE_NOTICE
        assert llm.requests == [] and llm.transcriptions == [] and tg.downloads == []


async def test_forget_all_deletes_what_the_user_sent(make_settings: Callable[..., Settings]) -> None:
    async with in_process_bot(make_settings) as (tg, _, settings):
        push_media(tg, FRIEND, document(tg, b"secret", "diary.txt", "text/plain"))
        await tg.messages(1)
        folder = settings.workspace / "users" / str(FRIEND) / "uploads"
        assert any(folder.iterdir())
        tg.push_text(FRIEND, "/forget all")
        question: Sent = (await tg.messages(2))[1]
        (_, yes_data), _ = tg.buttons(question)
        tg.push_callback(FRIEND, yes_data, question)
        done = (await tg.messages(3))[2]
        assert done.text.startswith("Done: I forgot")
        assert not folder.exists()


def test_safe_names_stay_one_component() -> None:
    assert uploads.safe_name("../../etc/passwd", "d") == "passwd"
    assert uploads.safe_name("..\\..\\boot.ini", "d") == "boot.ini"
    assert uploads.safe_name(".hidden", "d") == "hidden"
    assert uploads.safe_name("..", "d") == "d" and uploads.safe_name(None, "d") == "d"
    assert uploads.safe_name("a/b\x00c<d>.txt", "d") == "b_c_d_.txt"
    long = uploads.safe_name("x" * 300 + ".pdf", "d")
    assert len(long) == uploads.MAX_NAME and long.endswith(".pdf")


def test_a_planted_link_never_leads_a_save_out_of_the_workspace(tmp_path: Path) -> None:
    workspace, outside = tmp_path / "ws", tmp_path / "outside"
    outside.mkdir()
    (workspace / "users" / "7").mkdir(parents=True)
    (workspace / "users" / "7" / "uploads").symlink_to(outside)
    with pytest.raises(uploads.UploadRefused):
        uploads.save(workspace, 7, "a.txt", b"x", quota=None)
    assert list(outside.iterdir()) == []
    uploads.forget(workspace, 7)  # removes the link, not its target
    assert outside.exists() and not (workspace / "users" / "7" / "uploads").exists()


def test_the_quota_bounds_the_users_folder(tmp_path: Path) -> None:
    uploads.save(tmp_path, 7, "a.bin", b"x" * 600, quota=1024)
    with pytest.raises(uploads.UploadRefused, match="quota"):
        uploads.save(tmp_path, 7, "b.bin", b"x" * 600, quota=1024)
