"""open_agent(settings, store): the one place an Agent is assembled from Settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from agent.llm import LiteLLMClient, RetryPolicy, load_litellm
from agent.loop import MODEL_KEY, Agent, AgentConfig, ToolProvider
from agent.toolbox import ToolBox
from memory.embedding_queue import EmbeddingQueue
from memory.store import Store
from omni.errors import SettingsError
from omni.settings import Settings


def llm_client(settings: Settings, retry: RetryPolicy | None = None) -> LiteLLMClient:
    return LiteLLMClient(
        api_base=settings.llm_api_base,
        api_key=settings.llm_api_key,
        timeout=settings.llm_timeout,
        retry=retry or RetryPolicy(),
    )


class _Default:
    """Marker: open the MCP toolbox from settings."""


FROM_SETTINGS = _Default()


@asynccontextmanager
async def open_agent(
    settings: Settings,
    store: Store,
    *,
    tools: ToolProvider | None | _Default = FROM_SETTINGS,
    retry: RetryPolicy | None = None,
) -> AsyncIterator[Agent]:
    """An Agent on ``store``, using the model persisted by /model if there is one.

    By default the agent gets a :class:`ToolBox` of the built-in skills server and the servers
    of ``OMNI_MCP_CONFIG``, started in the background and closed on exit (no orphans). Pass
    ``tools`` to bring your own provider (or ``None`` for none); ``retry`` tunes LLM backoff.
    """
    if not settings.llm_model:
        raise SettingsError("OMNI_LLM_MODEL: is required by the agent but not set")
    if isinstance(tools, _Default):
        # Started by agent.warm_up() (the bot calls it once polling runs) or by first use:
        # spawning servers and importing the MCP client would slow the bot's start.
        box = ToolBox.from_settings(settings)
        try:
            async with open_agent(settings, store, tools=box, retry=retry) as agent:
                yield agent
        finally:
            await box.aclose()
        return
    persisted = await store.kv.get(MODEL_KEY)
    config = AgentConfig(
        model=persisted if isinstance(persisted, str) and persisted else settings.llm_model,
        history_tokens=settings.history_tokens,
        max_tool_rounds=settings.max_tool_rounds,
        consolidate_every=settings.memory_consolidate_every,
        daily_tokens=settings.usage_daily_tokens,
    )
    llm = llm_client(settings, retry)
    async with embeddings(settings, store, llm), Agent(store, llm, config, tools=tools) as agent:
        yield agent


@asynccontextmanager
async def embeddings(settings: Settings, store: Store, llm: LiteLLMClient) -> AsyncIterator[None]:
    """With ``OMNI_EMBEDDING_MODEL`` set, for the block: recall embeds questions, and a
    background queue embeds episodes. Without it, nothing (numpy is never imported)."""
    model = settings.embedding_model
    if not model:
        yield
        return
    embed = partial(llm.embed, model=model)

    async def attach_once_loaded() -> None:
        # A question's embedding has a short deadline, which litellm's import (seconds, done
        # in the background) must not eat: recall stays lexical until the client is loaded.
        await load_litellm()
        store.vectors.attach(embed)

    attaching = asyncio.create_task(attach_once_loaded(), name="attach-embeddings")
    try:
        async with EmbeddingQueue(store, embed, model):
            yield
    finally:
        attaching.cancel()
        await asyncio.wait([attaching])
        store.vectors.detach()
