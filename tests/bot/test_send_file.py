"""``send_file``: the assistant sends files of the user's workspace folder to the chat (the real
bot in-process, the fake Bot API checking the uploads), and nothing outside that folder."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from telegram import Bot

from bot.delivery import Upload, send_upload
from bot.workspace_file import FileRefused, read_file
from omni.settings import Settings
from tests.bot.conftest import FRIEND, in_process_bot
from tests.fakes.llm_api import FakeLLM, ScriptedReply
from tests.fakes.server import serve
from tests.fakes.telegram_api import BOT_USERNAME, TOKEN, FakeTelegram, Sent, Uploaded

pytestmark = pytest.mark.anyio

GROUP = -100777
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def send(path: str, caption: str | None = None) -> dict[str, Any]:
    return {"name": "send_file", "arguments": {"path": path, **({"caption": caption} if caption else {})}}


def tool_results(llm: FakeLLM) -> list[str]:
    """What the tools answered, as the model saw it in its last request."""
    return [str(m["content"]) for m in llm.requests[-1]["messages"] if m["role"] == "tool"]


async def _until_sent(tg: FakeTelegram, text: str, within: float = 10.0) -> list[Sent]:
    deadline = time.monotonic() + within
    while text not in tg.texts():
        assert time.monotonic() < deadline, f"never sent: {text!r}"
        await asyncio.sleep(0.02)
    return list(tg.sent)


def folder_of(settings: Settings, user_id: int) -> Path:
    folder = settings.workspace / "users" / str(user_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def test_a_picture_goes_as_a_photo_and_a_file_as_a_document(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings) as (tg, llm, settings):
        folder = folder_of(settings, FRIEND)
        (folder / "charts").mkdir()
        (folder / "charts" / "sales.png").write_bytes(PNG)
        (folder / "report.csv").write_text("month,sales\njan,3\n", encoding="utf-8")
        llm.enqueue(
            ScriptedReply(tool_calls=[send("charts/sales.png", "Sales by month"), send("./report.csv")]),
            ScriptedReply(text="Here are the chart and the numbers."),
        )
        tg.push_text(FRIEND, "send me the sales chart and the csv")
        answer = "Here are the chart and the numbers."
        sent = await _until_sent(tg, answer)
        # The status line comes and goes; the files (sent side by side: the loop runs one
        # round's tool calls at once), then the answer.
        order = [s.method for s in sent if s.method in ("sendPhoto", "sendDocument") or s.text == answer]
        assert sorted(order[:2]) == ["sendDocument", "sendPhoto"] and order[2:] == ["sendMessage"]
        assert sorted(tg.files(FRIEND), key=lambda f: f[0]) == [
            ("sendDocument", Uploaded("report.csv", b"month,sales\njan,3\n"), ""),
            ("sendPhoto", Uploaded("sales.png", PNG), "Sales by month"),
        ]
        assert sent[-1].text == answer
        photo, document = tool_results(llm)
        assert photo.startswith("Sent 'charts/sales.png' to the chat as a photo")
        assert document.startswith("Sent './report.csv' to the chat as a document")


async def test_paths_outside_the_users_folder_are_refused(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    async with in_process_bot(make_settings) as (tg, llm, settings):
        folder = folder_of(settings, FRIEND)
        secret = tmp_path / "secret.txt"
        secret.write_text("the operator's secret", encoding="utf-8")
        (folder_of(settings, 3003) / "theirs.txt").write_text("another user's file", encoding="utf-8")
        (settings.workspace / "admin-only.txt").write_text("admin's", encoding="utf-8")
        (folder / "link.txt").symlink_to(secret)
        (folder / "out").symlink_to(tmp_path, target_is_directory=True)
        refused = ["../3003/theirs.txt", "../../admin-only.txt", str(secret), "link.txt", "out/secret.txt"]
        llm.enqueue(
            ScriptedReply(tool_calls=[send(path) for path in refused]),
            ScriptedReply(text="I could not send those."),
        )
        tg.push_text(FRIEND, "send me some files")
        await _until_sent(tg, "I could not send those.")
        assert tg.files() == []
        results = tool_results(llm)
        assert len(results) == len(refused)
        assert all(r.startswith("Error:") for r in results), results
        assert not any("secret" in r and "operator" in r for r in results)  # nothing was read out
        assert "outside your workspace" in results[0] and "absolute" in results[2] and "symlink" in results[3]


def test_a_fifo_an_empty_file_and_an_over_large_file_are_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "users" / "7"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "pipe")
    (folder / "empty").write_bytes(b"")
    (folder / "big").write_bytes(b"x" * 101)
    (folder / "ok").write_bytes(b"x" * 100)
    for name, reason in [("pipe", "not a regular file"), ("empty", "empty"), ("big", "at most 100")]:
        with pytest.raises(FileRefused, match=reason):
            read_file(tmp_path, 7, False, name, limit=100)
    assert read_file(tmp_path, 7, False, "ok", limit=100).data == b"x" * 100
    assert read_file(tmp_path, None, True, "users/7/ok", limit=100).name == "ok"  # an admin's root


async def test_a_file_asked_for_in_a_forum_topic_lands_in_that_topic(
    make_settings: Callable[..., Settings],
) -> None:
    async with in_process_bot(make_settings) as (tg, llm, settings):
        (folder_of(settings, FRIEND) / "notes.txt").write_text("notes", encoding="utf-8")
        llm.enqueue(ScriptedReply(tool_calls=[send("notes.txt")]), ScriptedReply(text="There you go."))
        topic = {"message_thread_id": 5, "is_topic_message": True}
        tg.push_text(FRIEND, f"@{BOT_USERNAME} my notes", GROUP, chat_type="supergroup", extra=topic)
        await _until_sent(tg, "There you go.")
        [document] = [s for s in tg.sent if s.method == "sendDocument"]
        assert document.chat_id == GROUP and str(document.params["message_thread_id"]) == "5"
        assert document.params["document"] == Uploaded("notes.txt", b"notes")


async def test_a_picture_telegram_cannot_process_goes_as_a_document() -> None:
    tg = FakeTelegram()
    async with serve(tg.app) as base, Bot(TOKEN, base_url=f"{base}/bot") as bot:
        not_png = Upload("chart.png", b"<svg>not really a png</svg>", caption="c" * 2000, photo=True)
        message = await send_upload(bot, FRIEND, not_png)
    assert message.document is not None and not message.photo
    [(method, upload, caption)] = tg.files()
    assert (method, upload.filename) == ("sendDocument", "chart.png")
    assert len(caption) == 1024 and caption.endswith("…")  # cut to Telegram's caption limit
    assert [m for m, _ in tg.calls if m != "getMe"] == ["sendPhoto", "sendDocument"]
