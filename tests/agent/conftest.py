"""An agent on a real migrated SQLite file, talking to the fake LLM over real HTTP."""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from agent import Agent, RetryPolicy, ToolProvider, open_agent
from agent.mcp_config import StdioSpec
from memory.migrate import upgrade
from memory.store import Store, open_store
from omni.settings import Settings
from tests.fakes.llm_api import FakeLLM
from tests.fakes.server import serve
from tests.tools.conftest import EXTRA_SERVER

API_KEY = "sk-test-0123456789abcdef-secret"
# Real backoff shape, test-sized waits.
FAST_RETRY = RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.05, jitter=0.01, deadline=10)

OpenAgent = Callable[..., AbstractAsyncContextManager[Agent]]


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database upgraded to head per test run; each test gets a copy (Alembic is slow-ish)."""
    path = tmp_path_factory.mktemp("template") / "omni.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def database_url(tmp_path: Path, migrated_template: Path) -> str:
    target = tmp_path / "omni.db"
    shutil.copyfile(migrated_template, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
def llm() -> FakeLLM:
    return FakeLLM()


@pytest.fixture
async def llm_base(llm: FakeLLM) -> AsyncIterator[str]:
    async with serve(llm.app) as base:
        yield base + "/v1"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], llm_base: str, database_url: str) -> Settings:
    return make_settings(
        llm_model="openai/fake-model", llm_api_base=llm_base, llm_api_key=API_KEY, database_url=database_url
    )


@pytest.fixture
def agent_on(settings: Settings) -> OpenAgent:
    """``async with agent_on(**setting_overrides) as agent``: a store and an agent, closed after."""

    @asynccontextmanager
    async def factory(tools: ToolProvider | None = None, **overrides: Any) -> AsyncIterator[Agent]:
        merged = settings.model_copy(update=overrides) if overrides else settings
        async with (
            open_store(merged.database_url) as store,
            open_agent(merged, store, tools=tools, retry=FAST_RETRY) as agent,
        ):
            yield agent

    return factory


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A second connection to the test database, for reading what the agent stored."""
    async with open_store(database_url) as opened:
        yield opened


@pytest.fixture
def extra_spec() -> StdioSpec:
    """A tiny real MCP server over stdio (echo, slow, big, ...), for the agent with a ToolBox."""
    return StdioSpec(command=sys.executable, args=[str(EXTRA_SERVER)])
