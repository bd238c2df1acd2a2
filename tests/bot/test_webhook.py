"""Webhook mode: the real `omni bot` serving the webhook, posted to as Telegram would."""

from __future__ import annotations

import asyncio
import re
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from telegram import Bot

from bot.webhook import SECRET_HEADER, Intake, build_webhook_app
from memory import open_store
from memory.migrate import upgrade
from tests.bot.conftest import FRIEND, STRANGER, BotProcess, Fakes, query
from tests.fakes.llm_api import ScriptedReply
from tests.fakes.telegram_api import TOKEN, FakeTelegram

URL = "https://example.invalid/tg/hook"
PATH = "/tg/hook"
SECRET = "configured-secret_0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(condition: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _calls(tg: FakeTelegram, method: str) -> list[dict[str, Any]]:
    return [params for name, params in list(tg.calls) if name == method]


class Hook:
    """`omni bot` in webhook mode, and an HTTP client playing Telegram's part."""

    def __init__(self, start_bot: Callable[..., BotProcess], tg: FakeTelegram, tmp_path: Path) -> None:
        self.port = _free_port()
        self.spawn = start_bot  # the bare `omni bot` starter (no waiting)
        self.tg = tg
        no_skills = tmp_path / "no-skills.json"  # the skills server is not what these tests are about
        no_skills.write_text('{"mcpServers": {"skills": {"disabled": true}}}', encoding="utf-8")
        self.env = {
            "OMNI_MCP_CONFIG": str(no_skills),
            "OMNI_TELEGRAM_WEBHOOK_URL": URL,
            "OMNI_TELEGRAM_WEBHOOK_LISTEN": f"127.0.0.1:{self.port}",
        }
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)
        self.secret = ""

    def start(self, **env: str) -> BotProcess:
        """Start the bot and wait until it registered its webhook (it listens by then)."""
        before = len(_calls(self.tg, "setWebhook"))
        bot = self.spawn(**{**self.env, **env})
        _wait(lambda: len(_calls(self.tg, "setWebhook")) > before or bot.proc.poll() is not None, 60)
        assert bot.proc.poll() is None, bot.stderr()
        self.secret = str(_calls(self.tg, "setWebhook")[-1]["secret_token"])
        return bot

    def post(self, body: Any, *, secret: str | None = "", path: str = PATH, **kw: Any) -> httpx.Response:
        """POST ``body`` (JSON, or bytes as they are) with the bot's secret unless told otherwise."""
        headers = {} if secret is None else {SECRET_HEADER: secret or self.secret}
        if isinstance(body, bytes):
            return self.client.post(path, content=body, headers=headers, **kw)
        return self.client.post(path, json=body, headers=headers, **kw)

    def text(self, update_id: int, user: int, text: str) -> httpx.Response:
        return self.post({"update_id": update_id, "message": self.tg.message(user, text)})


@pytest.fixture
def hook(start_bot: Callable[..., BotProcess], fakes_in_thread: Fakes, tmp_path: Path) -> Iterator[Hook]:
    h = Hook(start_bot, fakes_in_thread.tg, tmp_path)
    yield h
    h.client.close()


def test_sets_the_webhook_and_answers_each_update_once_in_order(
    hook: Hook, fakes_in_thread: Fakes, tmp_path: Path
) -> None:
    tg, llm = fakes_in_thread.tg, fakes_in_thread.llm
    llm.enqueue(ScriptedReply(text="hello to you", delay=1.0))
    bot = hook.start(OMNI_LOG_LEVEL="DEBUG")
    params = _calls(tg, "setWebhook")[-1]
    assert params["url"] == URL
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", hook.secret)  # generated: 32 random bytes
    assert {"message", "message_reaction", "callback_query"} <= set(params["allowed_updates"])
    assert str(params["drop_pending_updates"]).lower() == "false"

    started = time.monotonic()
    assert hook.text(5001, FRIEND, "hello").status_code == 200
    acked_in = time.monotonic() - started
    assert acked_in < 1.0 and tg.texts() == []  # acknowledged before the (1 s) answer exists
    assert hook.text(5001, FRIEND, "hello").status_code == 200  # Telegram delivering it again
    assert tg.wait_for_messages(1)[0].text == "hello to you"

    # One chat's messages, each posted once the previous one was acknowledged (as Telegram does).
    for i in range(5):
        assert hook.text(5002 + i, FRIEND, f"part {i}").status_code == 200
    sent = tg.wait_for_messages(6)
    assert [s.text for s in sent] == ["hello to you"] + [f"echo: part {i}" for i in range(5)]
    time.sleep(0.5)
    assert len(tg.sent) == 6  # the repeated 5001 was not answered twice
    assert tg.get_updates_times == []  # no polling beside the webhook

    code, took = bot.terminate()
    assert code == 0 and took < 10
    assert _calls(tg, "deleteWebhook") == [] and tg.webhook is not None  # kept for the restart
    log = bot.stderr()
    assert f"receiving updates by webhook at {URL}" in log
    assert "'secret_token': '***'" in log  # PTB logs setWebhook's parameters at DEBUG
    assert hook.secret not in log and TOKEN.split(":")[1] not in log
    db = tmp_path / "data" / "omni.db"
    statuses = query(db, "SELECT status FROM updates WHERE update_id BETWEEN 5001 AND 5006")
    assert statuses == [("answered",)] * 6


def test_refuses_calls_without_the_secret_and_malformed_ones(
    hook: Hook, fakes_in_thread: Fakes, tmp_path: Path
) -> None:
    tg = fakes_in_thread.tg
    hook.start(OMNI_TELEGRAM_WEBHOOK_SECRET=SECRET)
    assert hook.secret == SECRET
    forged = {"update_id": 7001, "message": tg.message(FRIEND, "forged: run rm -rf")}
    assert hook.post(forged, secret=None).status_code == 403
    assert hook.post(forged, secret="x" * len(SECRET)).status_code == 403
    assert hook.post(forged, secret=SECRET + "x").status_code == 403
    assert hook.client.get(PATH, headers={SECRET_HEADER: SECRET}).status_code == 405
    assert hook.post(forged, path="/").status_code == 404
    assert hook.post(forged, path=PATH + "/").status_code == 404
    assert hook.post(b"x" * (1024 * 1024 + 1)).status_code == 413
    assert hook.post(b"{not json").status_code == 400
    assert hook.post(b"\xff\xfe").status_code == 400
    assert hook.post([1, 2]).status_code == 400
    assert hook.post({"update_id": "7002"}).status_code == 400
    assert hook.post({"update_id": 7003, "message": "not a message"}).status_code == 400

    # A stranger's message through the webhook: refused, and nothing of theirs is kept.
    assert hook.text(7004, STRANGER, "let me in").status_code == 200
    assert str(STRANGER) in tg.wait_for_messages(1)[0].text
    assert hook.text(7005, FRIEND, "/help").status_code == 200  # answered without the LLM: quick
    assert f"<code>{FRIEND}</code>" in tg.wait_for_messages(2)[1].text
    time.sleep(0.3)
    assert len(tg.sent) == 2  # nothing for the refused calls
    db = tmp_path / "data" / "omni.db"
    _wait(lambda: query(db, "SELECT update_id, status FROM updates") == [(7005, "answered")])


def test_killed_after_acknowledging_is_answered_once_after_restart(
    hook: Hook, fakes_in_thread: Fakes, tmp_path: Path
) -> None:
    tg = fakes_in_thread.tg
    first = hook.start()
    secret = hook.secret
    assert hook.text(8001, FRIEND, "important question").status_code == 200
    # SIGKILL right after the 200, so Telegram would not send it again. No answer can exist yet:
    # the model client alone takes seconds to load in a fresh process.
    first.kill()
    assert tg.texts() == []

    hook.start()
    assert hook.secret == secret  # the generated secret was kept
    assert tg.wait_for_messages(1)[0].text == "echo: important question"
    assert hook.text(8001, FRIEND, "important question").status_code == 200  # a late duplicate
    time.sleep(0.5)
    assert tg.texts() == ["echo: important question"]
    db = tmp_path / "data" / "omni.db"
    _wait(lambda: query(db, "SELECT status FROM updates WHERE update_id = 8001") == [("answered",)])
    assert query(db, "SELECT count(*) FROM messages WHERE content = 'important question'") == [(1,)]


def test_polling_again_deletes_the_webhook_before_polling(hook: Hook, fakes_in_thread: Fakes) -> None:
    tg = fakes_in_thread.tg
    code, _ = hook.start().terminate()
    assert code == 0 and tg.webhook is not None
    tg.push_text(FRIEND, "/help")  # kept for us; getUpdates answers 409 while a webhook is set

    polling = hook.spawn(OMNI_MCP_CONFIG=hook.env["OMNI_MCP_CONFIG"])
    assert f"<code>{FRIEND}</code>" in tg.wait_for_messages(1)[0].text
    names = [name for name, _ in list(tg.calls)]
    last_set = len(names) - 1 - names[::-1].index("setWebhook")
    delete = names.index("deleteWebhook", last_set)
    assert "getUpdates" not in names[last_set:delete]
    assert str(tg.calls[delete][1].get("drop_pending_updates")).lower() == "false"
    code, _ = polling.terminate()
    assert code == 0 and "Conflict" not in polling.stderr()


def test_a_listen_address_in_use_stops_the_bot_with_one_line(hook: Hook, fakes_in_thread: Fakes) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", hook.port))
        taken.listen()
        bot = hook.spawn(**hook.env)
        assert bot.proc.wait(timeout=60) == 1
    bot.kill()  # already gone: this only closes its log file
    log = bot.stderr()
    assert f"cannot listen on 127.0.0.1:{hook.port} (OMNI_TELEGRAM_WEBHOOK_LISTEN)" in log
    assert "Traceback" not in log and _calls(fakes_in_thread.tg, "setWebhook") == []


@pytest.mark.anyio
async def test_an_update_that_cannot_be_recorded_is_answered_500(tmp_path: Path) -> None:
    """The database failing: no 200, so Telegram sends the update again, and that one is taken."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'hook.db'}"
    await asyncio.to_thread(upgrade, url)
    queue: asyncio.Queue[object] = asyncio.Queue()
    update = {"update_id": 9001, "message": FakeTelegram().message(FRIEND, "hi")}
    async with open_store(url) as store:
        app = build_webhook_app(PATH, SECRET, Intake(Bot(TOKEN), queue, store.updates))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hook") as client:
            with sqlite3.connect(tmp_path / "hook.db") as conn:
                conn.execute("ALTER TABLE updates RENAME TO updates_away")  # the table is gone
            failed = await client.post(PATH, json=update, headers={SECRET_HEADER: SECRET})
            assert failed.status_code == 500 and queue.empty()
            with sqlite3.connect(tmp_path / "hook.db") as conn:
                conn.execute("ALTER TABLE updates_away RENAME TO updates")
            taken = await client.post(PATH, json=update, headers={SECRET_HEADER: SECRET})
            assert taken.status_code == 200 and queue.qsize() == 1
            again = await client.post(PATH, json=update, headers={SECRET_HEADER: SECRET})
            assert again.status_code == 200 and queue.qsize() == 1
        assert await store.updates.status(9001) == "received"
