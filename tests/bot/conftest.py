"""Fixtures for the bot: the fake Bot API and fake LLM, the bot in-process or as `omni bot`."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from memory.migrate import upgrade
from omni.settings import Settings
from tests.fakes.llm_api import FakeLLM
from tests.fakes.server import serve, serve_in_thread
from tests.fakes.telegram_api import TOKEN, FakeTelegram

ADMIN = 1001
FRIEND = 2002  # allowed by OMNI_ALLOWED_IDS
STRANGER = 6666
POLL = 0.5  # long-poll timeout in tests: shutdown and restarts stay quick


@dataclass
class Fakes:
    tg: FakeTelegram
    llm: FakeLLM
    tg_url: str
    llm_url: str


@pytest.fixture(scope="session", autouse=True)
def litellm_imported() -> None:
    """Pay litellm's slow import once, before the first test's clock starts."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm  # noqa: F401


@pytest.fixture
def fakes_in_thread() -> Iterator[Fakes]:
    """Both fakes served from a background thread (for subprocess tests)."""
    tg, llm = FakeTelegram(), FakeLLM()
    with serve_in_thread(tg.app) as tg_url, serve_in_thread(llm.app) as llm_url:
        yield Fakes(tg, llm, tg_url, llm_url)


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read the bot's SQLite file directly: what was really stored."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, args).fetchall()


@asynccontextmanager
async def fakes_in_loop(llm_delay: float = 0.0) -> AsyncIterator[Fakes]:
    """Both fakes served in the test's event loop (for the bot in-process)."""
    tg, llm = FakeTelegram(), FakeLLM(default_delay=llm_delay)
    async with serve(tg.app) as tg_url, serve(llm.app) as llm_url:
        yield Fakes(tg, llm, tg_url, llm_url)


def settings_for(make_settings: Callable[..., Settings], fakes: Fakes, **overrides: Any) -> Settings:
    """Settings for the bot in-process. The skills MCP server is left out: these tests are about
    the bot, and spawning `omni mcp` per test would double their time (test_process keeps it)."""
    no_skills = Path("mcp-no-skills.json")  # the test's temp cwd (conftest.clean_environ)
    no_skills.write_text('{"mcpServers": {"skills": {"disabled": true}}}', encoding="utf-8")
    values: dict[str, Any] = {
        "mcp_config": no_skills,
        "telegram_token": TOKEN,
        "telegram_api_url": fakes.tg_url,
        "llm_model": "openai/fake-model",
        "llm_api_base": fakes.llm_url + "/v1",
        "llm_api_key": "sk-test-key-123",
        "admin_ids": str(ADMIN),
        "allowed_ids": str(FRIEND),
    }
    return make_settings(**{**values, **overrides})


@asynccontextmanager
async def bot_running(settings: Settings) -> AsyncIterator[None]:
    """The real bot (bot.run.running) in this event loop, on a migrated database."""
    from bot.run import Polling, running

    await asyncio.to_thread(upgrade, settings.database_url)
    async with running(settings, Polling(timeout=POLL, margin=1.0)):
        yield


@asynccontextmanager
async def in_process_bot(
    make_settings: Callable[..., Settings], llm_delay: float = 0.0, **overrides: Any
) -> AsyncIterator[tuple[FakeTelegram, FakeLLM, Settings]]:
    """Fakes and the bot, all in this event loop."""
    async with fakes_in_loop(llm_delay) as fakes:
        settings = settings_for(make_settings, fakes, **overrides)
        async with bot_running(settings):
            yield fakes.tg, fakes.llm, settings


def db_path(settings: Settings) -> Path:
    return settings.data_dir / "omni.db"


class BotProcess:
    """`omni bot` as a subprocess with its stderr captured to a file."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._stderr = log.open("ab")
        self.proc = subprocess.Popen(cmd + ["bot"], env=env, stdout=subprocess.DEVNULL, stderr=self._stderr)

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def terminate(self, within: float = 10.0) -> tuple[int, float]:
        """SIGTERM; the exit code and how long the process took to exit."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=within + 5)
        self._stderr.close()
        return code, time.monotonic() - start

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._stderr.close()


@pytest.fixture
def start_bot(
    omni_cmd: list[str], fakes_in_thread: Fakes, tmp_path: Path
) -> Iterator[Callable[..., BotProcess]]:
    """Start `omni bot` against the threaded fakes; every process is stopped at the end."""
    started: list[BotProcess] = []

    def factory(**extra_env: str) -> BotProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNI_")}
        env.update(
            OMNI_TELEGRAM_TOKEN=TOKEN,
            OMNI_TELEGRAM_API_URL=fakes_in_thread.tg_url,
            OMNI_LLM_MODEL="openai/fake-model",
            OMNI_LLM_API_BASE=fakes_in_thread.llm_url + "/v1",
            OMNI_LLM_API_KEY="sk-test-key-123",
            OMNI_ADMIN_IDS=str(ADMIN),
            OMNI_ALLOWED_IDS=str(FRIEND),
            OMNI_DATA_DIR=str(tmp_path / "data"),
            LITELLM_LOCAL_MODEL_COST_MAP="True",
        )
        env.update(extra_env)
        bot = BotProcess(omni_cmd, env, tmp_path / f"bot{len(started)}.log")
        started.append(bot)
        return bot

    yield factory
    for bot in started:
        if bot.proc.poll() is None:
            bot.kill()
