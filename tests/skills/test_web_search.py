"""web_search against a local fake of each provider (tests/fakes/search_api.py): in process through
the MCP client the other web tests use, and through the real ``omni mcp`` child."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from mcp import Client

from agent.mcp_config import BUILTIN, server_specs
from agent.progress import describe_call
from omni.settings import Settings
from tests.fakes.search_api import BRAVE_PATH, SEARXNG_PATH, SNIPPET, TAVILY_PATH, FakeSearch
from tests.fakes.server import serve
from tests.skills.conftest import NON_ADMIN, RealServer, text_of

pytestmark = pytest.mark.anyio

KEY = "test-key-0123456789"


@pytest.fixture
def fake() -> FakeSearch:
    return FakeSearch(key=KEY, slow_s=0.4)


@pytest.fixture
async def base(fake: FakeSearch) -> AsyncIterator[str]:
    async with serve(fake.app) as url:
        yield url


def provider_settings(provider: str, base: str, key: str = KEY) -> dict[str, Any]:
    """Settings naming one provider on the fake; loopback, so the endpoint must be allowed."""
    if provider == "searxng":
        named: dict[str, Any] = {"searxng_url": base + SEARXNG_PATH}
    elif provider == "brave":
        named = {"brave_api_key": key, "brave_api_url": base + BRAVE_PATH}
    else:
        named = {"tavily_api_key": key, "tavily_api_url": base + TAVILY_PATH}
    return {**named, "web_search_allow_private": True}


async def tool_names(client: Client) -> set[str]:
    return {t.name for t in (await client.list_tools()).tools}


async def test_absent_without_a_provider(client: Client) -> None:
    assert "fetch_url" in await tool_names(client) and "web_search" not in await tool_names(client)


async def test_searxng_results_are_numbered_and_capped(
    connect: Callable[..., Client], fake: FakeSearch, base: str
) -> None:
    async with connect(**provider_settings("searxng", base)) as client:
        assert "web_search" in await tool_names(client)
        result = await client.call_tool("web_search", {"query": "omni assistant"})
        text = text_of(result)
        assert not result.is_error, text
        # The instance answers 20; the default shows 5, each with title, URL and a cut snippet.
        assert text.startswith("1. Result 1 for omni assistant\n   https://example.org/1\n   word word")
        assert "5. Result 5" in text and "6. " not in text
        assert all(len(line) <= 3 + 400 for line in text.splitlines()) and SNIPPET.strip() not in text
        assert fake.requests[-1].params == {"q": "omni assistant", "format": "json"}

        three = text_of(await client.call_tool("web_search", {"query": "x", "count": 3}))
        assert "3. Result 3" in three and "4. " not in three
        ten = text_of(await client.call_tool("web_search", {"query": "x" * 400, "count": 10}))
        assert "10. Result 10" in ten and len(ten) < 16_000  # the agent's cap on one tool result
        for bad in ({"query": "x", "count": 11}, {"query": "x", "count": 0}, {"query": ""}):
            assert (await client.call_tool("web_search", bad)).is_error, bad


async def test_brave_sends_its_key_and_count_and_plain_snippets(
    connect: Callable[..., Client], fake: FakeSearch, base: str
) -> None:
    async with connect(**provider_settings("brave", base)) as client:
        text = text_of(await client.call_tool("web_search", {"query": "tea", "count": 2}))
        assert text == (
            "1. Result 1 for tea\n   https://example.org/1\n   All about tea & more\n\n"
            "2. Result 2 for tea\n   https://example.org/2\n   All about tea & more"
        )
        seen = fake.requests[-1]
        assert seen.method == "GET" and seen.params == {"q": "tea", "count": "2"}
        assert seen.headers["x-subscription-token"] == KEY and "authorization" not in seen.headers


async def test_tavily_sends_a_bearer_key_and_max_results(
    connect: Callable[..., Client], fake: FakeSearch, base: str
) -> None:
    async with connect(**provider_settings("tavily", base)) as client:
        text = text_of(await client.call_tool("web_search", {"query": "tea", "count": 4}))
        assert "4. Result 4 for tea" in text and "5. " not in text
        seen = fake.requests[-1]
        assert seen.method == "POST" and seen.body == {"query": "tea", "max_results": 4}
        assert seen.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("provider", ["searxng", "brave", "tavily"])
async def test_failures_become_tool_errors(
    connect: Callable[..., Client],
    fake: FakeSearch,
    base: str,
    provider: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with connect(**provider_settings(provider, base)) as client:
        search = sys.modules["skills.web.search"]  # the copy this server loaded
        monkeypatch.setattr(search, "RETRY_WAIT_S", 0.05)

        async def error_for(*answers: int | str) -> str:
            fake.fail(*answers)
            result = await client.call_tool("web_search", {"query": "q"})
            assert result.is_error and "Traceback" not in text_of(result)
            return text_of(result)

        assert "rate limiting" in await error_for(429, 429)
        assert "failed (HTTP 500" in await error_for(500, 500)
        assert "did not answer with JSON" in await error_for("html")
        assert "refused the search (HTTP 400" in await error_for(400)
        # A timeout is retried too; the fake's delay outlasts a shortened attempt each time.
        monkeypatch.setattr(search, "TIMEOUT_S", 0.2)
        assert "did not answer within 0.2 s" in await error_for("slow", "slow")


async def test_a_transient_failure_is_retried_once(
    connect: Callable[..., Client], fake: FakeSearch, base: str
) -> None:
    async with connect(**provider_settings("brave", base)) as client:
        fake.fail(503)
        result = await client.call_tool("web_search", {"query": "q"})
        assert not result.is_error and "1. Result 1 for q" in text_of(result)
        assert len(fake.requests) == 2
        fake.fail(401)  # not transient: one request, no retry
        result = await client.call_tool("web_search", {"query": "q"})
        assert result.is_error and "refused the API key" in text_of(result) and len(fake.requests) == 3


async def test_provider_down_is_a_tool_error(connect: Callable[..., Client]) -> None:
    async with serve(FakeSearch().app) as gone:
        pass  # its port is closed now
    async with connect(**provider_settings("tavily", gone)) as client:
        result = await client.call_tool("web_search", {"query": "q"})
        assert result.is_error and text_of(result).endswith(
            "cannot reach Tavily (ConnectError); try again later"
        )


@pytest.mark.parametrize("provider", ["brave", "tavily"])
async def test_a_bad_key_is_reported_without_echoing_it(
    connect: Callable[..., Client], fake: FakeSearch, base: str, provider: str
) -> None:
    wrong = "wrong-key-ABCDEFGHIJ"
    async with connect(**provider_settings(provider, base, key=wrong)) as client:
        result = await client.call_tool("web_search", {"query": "q"})
        text = text_of(result)
        assert result.is_error and f"check OMNI_{provider.upper()}_API_KEY" in text
        assert wrong not in text and "ABCDEFGHIJ" not in text
    if provider == "brave":  # Brave's own detail repeats the token: it must come back masked
        assert "subscription token *** is invalid" in text


async def test_searxng_without_json_format_says_how_to_enable_it(
    connect: Callable[..., Client], fake: FakeSearch, base: str
) -> None:
    fake.searxng_json = False  # an instance whose settings.yml lists only html (the default)
    async with connect(**provider_settings("searxng", base)) as client:
        result = await client.call_tool("web_search", {"query": "q"})
        assert result.is_error and "settings.yml must list json in search.formats" in text_of(result)


async def test_private_endpoint_is_refused_unless_allowed(
    connect: Callable[..., Client], fake: FakeSearch, base: str
) -> None:
    for provider in ("searxng", "brave"):
        settings = {**provider_settings(provider, base), "web_search_allow_private": False}
        async with connect(**settings) as client:
            result = await client.call_tool("web_search", {"query": "q"})
            text = text_of(result)
            assert result.is_error and "non-public address (127.0.0.1)" in text, text
            assert "OMNI_WEB_SEARCH_ALLOW_PRIVATE=true" in text
    assert fake.requests == []  # refused before any request left
    # OMNI_WEB_ALLOW_PRIVATE opens the whole web skill, the search endpoint included.
    settings = {**provider_settings("searxng", base), "web_search_allow_private": False}
    async with connect(**settings, web_allow_private=True) as client:
        assert not (await client.call_tool("web_search", {"query": "q"})).is_error
    # The setting concerns the configured endpoint only: fetch_url still refuses private hosts.
    async with connect(**provider_settings("searxng", base)) as client:
        assert not (await client.call_tool("web_search", {"query": "q"})).is_error
        fetched = await client.call_tool("fetch_url", {"url": base + "/"})
        assert fetched.is_error and "non-public address" in text_of(fetched)


async def test_through_the_real_omni_mcp(real_server: RealServer, fake: FakeSearch, base: str) -> None:
    env = {
        "OMNI_BRAVE_API_KEY": KEY,
        "OMNI_BRAVE_API_URL": base + BRAVE_PATH,
        "OMNI_WEB_SEARCH_ALLOW_PRIVATE": "true",
    }
    async with real_server(**env) as session:
        assert "web_search" in {t.name for t in (await session.list_tools()).tools}
        result = await session.call_tool("web_search", {"query": "tea", "count": 1}, meta=NON_ADMIN)
        assert not result.is_error and text_of(result).startswith("1. Result 1 for tea")
        assert fake.requests[-1].headers["x-subscription-token"] == KEY
    async with real_server() as session:
        assert "web_search" not in {t.name for t in (await session.list_tools()).tools}


def test_two_providers_refuse_to_start(omni_cmd: list[str], tmp_path: Any) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "OMNI_DATA_DIR": str(tmp_path / "data"),
        "OMNI_SEARXNG_URL": "https://searx.example.org",
        "OMNI_TAVILY_API_KEY": "tvly-secret-value",
    }
    done = subprocess.run(
        [*omni_cmd, "mcp"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .endswith("OMNI_SEARXNG_URL, OMNI_TAVILY_API_KEY: more than one web search provider is set; keep one")
    )
    assert "tvly-secret-value" not in done.stderr


def test_the_bot_passes_the_provider_to_its_skills_server(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(tavily_api_key="tvly-abc", web_search_allow_private=True)
    env = server_specs(settings)[BUILTIN].env  # type: ignore[union-attr]
    assert env["OMNI_TAVILY_API_KEY"] == "tvly-abc" and env["OMNI_WEB_SEARCH_ALLOW_PRIVATE"] == "true"
    assert "OMNI_SEARXNG_URL" not in env and "OMNI_BRAVE_API_KEY" not in env
    assert "tvly-abc" in settings.secrets()  # masked in the logs like the other secrets
    unset = server_specs(make_settings())[BUILTIN].env  # type: ignore[union-attr]
    assert not {"OMNI_SEARXNG_URL", "OMNI_BRAVE_API_KEY", "OMNI_TAVILY_API_KEY"} & set(unset)


def test_progress_label() -> None:
    assert (
        describe_call("skills", "web_search", {"query": "tea prices"})
        == "🔎 searching the web for tea prices…"
    )
