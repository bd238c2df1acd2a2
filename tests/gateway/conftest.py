"""The gateway in-process (its app over httpx's ASGI transport, a real agent and store) or as a
real `omni gateway` subprocess; both against the fake LLM over real HTTP.

The database is a fixture: ``db_url`` runs a test on SQLite and on PostgreSQL (skipped where no
server answers, see tests/postgres.py); ``sqlite_url`` is for tests the database does not change.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent import RetryPolicy, Turn, open_agent
from gateway import Gateway, GatewayConfig, build_gateway
from memory.locks import ConversationLocks
from memory.migrate import upgrade
from memory.store import Store, open_store
from memory.types import StoredMessage
from omni.settings import Settings
from tests.fakes.llm_api import FakeLLM
from tests.fakes.server import serve, serve_in_thread

API_KEY = "sk-test-gateway-0123456789"
TOKEN = "gw-token-0123456789abcdef"
# Real backoff shape, test-sized waits.
FAST_RETRY = RetryPolicy(attempts=2, initial_wait=0.01, max_wait=0.05, jitter=0.01, deadline=5)
_LISTENING = re.compile(r"gateway listening on (http://\S+)")


@pytest.fixture(scope="session", autouse=True)
def litellm_imported() -> None:
    """Pay litellm's slow import once, before the first test's clock starts."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm  # noqa: F401


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite database at head per run; each test gets a copy (migrating takes a while)."""
    path = tmp_path_factory.mktemp("gateway-template") / "omni.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_template: Path) -> str:
    target = tmp_path / "data" / "omni.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(migrated_template, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """Tests whose point is what gets stored run on both databases omni supports."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return sqlite_url


async def history(url: str, session_id: str) -> list[StoredMessage]:
    """What the database holds for gateway session ``session_id``, oldest first."""
    async with open_store(url) as store:
        ref = await store.conversations.current(f"gw:{session_id}")
        return await store.conversations.messages(ref.session_id)


async def episodes(url: str, session_id: str) -> list[str]:
    """The texts in the session's memory (owner ``local:gw:<id>``), in no particular order."""
    async with open_store(url) as store:
        views, _ = await store.episodes.listing(f"local:gw:{session_id}", limit=1000)
    return [v.text for v in views]


def message(session_id: str, text: str) -> dict[str, str]:
    return {"session_id": session_id, "message": text}


# --- in process ---


@dataclass
class InProcess:
    client: httpx.AsyncClient
    gateway: Gateway
    llm: FakeLLM
    store: Store
    url: str  # the database's


@pytest.fixture
def in_process(
    make_settings: Callable[..., Settings],
) -> Callable[..., Any]:
    """``async with in_process(db_url, token=..., timeout=..., llm_delay=...) as gw`` — the app
    on a real agent (no MCP servers: these tests are about HTTP) and store.

    The agent has answered once (session ``gw:warm-up``) before the app serves: litellm's first
    call takes about a second, which would blur any test that measures time."""

    @asynccontextmanager
    async def start(url: str, llm_delay: float = 0.0, **config: Any) -> AsyncIterator[InProcess]:
        llm = FakeLLM(default_delay=llm_delay)
        async with serve(llm.app) as base:
            settings = make_settings(
                llm_model="openai/fake-model",
                llm_api_base=base + "/v1",
                llm_api_key=API_KEY,
                database_url=url,
            )
            async with (
                open_store(url) as store,
                open_agent(settings, store, tools=None, retry=FAST_RETRY) as agent,
            ):
                await agent.reply(Turn(session_key="gw:warm-up", text="hi"))
                llm.reset()
                gateway = build_gateway(agent, GatewayConfig(**config), ConversationLocks(store.db))
                transport = httpx.ASGITransport(app=gateway)
                async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                    yield InProcess(client, gateway, llm, store, url)
                await agent.compacted()

    return start


# --- as a subprocess ---


@pytest.fixture
def llm_in_thread() -> Iterator[tuple[FakeLLM, str]]:
    """The fake LLM served from a thread (the subprocess reaches it over HTTP); its /v1 URL."""
    llm = FakeLLM()
    with serve_in_thread(llm.app) as base:
        yield llm, base + "/v1"


class GatewayProcess:
    """`omni gateway` as a subprocess, its stderr in a file; ``url`` once it listens."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._stderr = log.open("ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=self._stderr)
        self.url = ""

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_listening(self, within: float = 30.0) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = _LISTENING.search(self.stderr())
            if found:
                self.url = found.group(1)
                return self.url
            if self.proc.poll() is not None:
                raise AssertionError(f"omni gateway exited {self.proc.returncode}:\n{self.stderr()}")
            time.sleep(0.05)
        raise AssertionError(f"omni gateway did not listen within {within} s:\n{self.stderr()}")

    def terminate(self, within: float = 15.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(within)

    def wait(self, within: float = 15.0) -> int:
        code = self.proc.wait(timeout=within)
        self._stderr.close()
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._stderr.close()


StartGateway = Callable[..., GatewayProcess]


@pytest.fixture
def start_gateway(
    omni_cmd: list[str], llm_in_thread: tuple[FakeLLM, str], tmp_path: Path
) -> Iterator[StartGateway]:
    """``start_gateway(*args, skills=False, database_url=..., OMNI_X=...)``: `omni gateway` on
    port 0 against the threaded fake LLM. Without ``skills`` no MCP server is started (faster).
    Every process still running at the end is killed."""
    started: list[GatewayProcess] = []
    no_skills = tmp_path / "mcp-no-skills.json"
    no_skills.write_text('{"mcpServers": {"skills": {"disabled": true}}}', encoding="utf-8")

    def factory(
        *args: str, skills: bool = False, database_url: str | None = None, **env: str
    ) -> GatewayProcess:
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("OMNI_")}
        child_env.update(
            OMNI_LLM_MODEL="openai/fake-model",
            OMNI_LLM_API_BASE=llm_in_thread[1],
            OMNI_LLM_API_KEY=API_KEY,
            OMNI_DATA_DIR=str(tmp_path / "data"),
            LITELLM_LOCAL_MODEL_COST_MAP="True",
        )
        if database_url is not None:
            child_env["OMNI_DATABASE_URL"] = database_url
        if not skills:
            child_env["OMNI_MCP_CONFIG"] = str(no_skills)
        child_env.update(env)
        cmd = [*omni_cmd, "gateway", *(args or ("--port", "0"))]
        process = GatewayProcess(cmd, child_env, tmp_path / f"gateway{len(started)}.log")
        started.append(process)
        return process

    yield factory
    for process in started:
        if process.proc.poll() is None:
            process.kill()
