"""The web search check: one small query to the provider ``web_search`` would use, through the
tool's own path (address check, pinning, the provider's protocol), so a line here that passes
means the tool works. No provider is a skipped line: web search is optional."""

from __future__ import annotations

import asyncio
import time

from omni.doctor_check import PROBE_TIMEOUT_S, Check, since
from omni.settings import Settings

# Imported with this module, before the checks run side by side: the skills import the MCP SDK,
# which the MCP check imports in a thread meanwhile, and two threads importing one package at
# once can each find the other's modules half made.
from skills._tool import SkillError
from skills.web.search import NAMES, config_of, redact, search_web

NAME = "web search"
QUERY = "omni"


async def check_search(settings: Settings) -> Check:
    config = config_of(settings)
    if config is None:
        return Check.skipped(
            NAME, "no provider set (OMNI_SEARXNG_URL, OMNI_BRAVE_API_KEY or OMNI_TAVILY_API_KEY)"
        )
    provider = NAMES[config.provider]
    started = time.perf_counter()
    try:
        async with asyncio.timeout(3 * PROBE_TIMEOUT_S):  # a retry of a slow provider included
            results = await search_web(config, QUERY, 1)
    except SkillError as exc:
        return Check.failed(NAME, f"{provider}: {redact(str(exc), config.api_key)}")
    except TimeoutError:
        return Check.failed(NAME, f"{provider} did not answer within {3 * PROBE_TIMEOUT_S:g} s")
    found = f"{len(results)} result" + ("" if len(results) == 1 else "s")
    return Check.ok(NAME, f"{provider} answered with {found} ({since(started)})")
