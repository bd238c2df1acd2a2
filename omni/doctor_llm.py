"""The LLM check: a one-token completion through litellm, made the way the agent makes calls.

An endpoint that answers the port but refuses the key or the model is a failure, with the
reason in plain words. The provider's own message is read to tell a missing model from a
wrong path, but never printed: providers quote requests, keys included.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from omni.doctor_check import PROBE_TIMEOUT_S, Check, causes, network_problem, since
from omni.settings import Settings, mask_url

NAME = "llm"


async def check_llm(settings: Settings) -> Check:
    model = settings.llm_model
    if not model:
        return Check.failed(NAME, "OMNI_LLM_MODEL is not set (the bot and `omni chat` need a model)")
    where = f"{model} at {mask_url(settings.llm_api_base)}" if settings.llm_api_base else model
    from agent.llm import load_litellm

    litellm = await load_litellm()  # seconds on first use: not part of the latency shown
    started = time.perf_counter()
    try:
        # litellm's timeout bounds the request; this one bounds everything around it too.
        async with asyncio.timeout(PROBE_TIMEOUT_S + 1):
            await litellm.acompletion(**_arguments(settings, model))
    except Exception as exc:  # a probe: whatever stopped the call is the finding
        return Check.failed(NAME, f"{where}: {_problem(exc, model)}")
    return Check.ok(NAME, f"{where} answered in {since(started)}")


def _arguments(settings: Settings, model: str) -> dict[str, Any]:
    """What agent.llm.LiteLLMClient sends (endpoint, key, no SDK retries), for one token."""
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "Reply with one word: ok"}],
        "max_tokens": 1,
        "timeout": PROBE_TIMEOUT_S,
        "max_retries": 0,
    }
    if settings.llm_api_base:
        kwargs["api_base"] = settings.llm_api_base
    if settings.llm_api_key is not None:
        kwargs["api_key"] = settings.llm_api_key.get_secret_value()
    return kwargs


def _problem(exc: BaseException, model: str) -> str:
    network = network_problem(exc)
    if network is not None:
        return network
    # The model's own name is taken out so that "model" below means the provider spoke of one.
    text = " ".join(str(e) for e in causes(exc)).lower().replace(model.lower(), "")
    if "missing credentials" in text or "api_key client option must be set" in text:
        return "no API key: set OMNI_LLM_API_KEY (or the provider's variable, e.g. OPENAI_API_KEY)"
    if "credentials encoded in url" in text:  # aiohttp, under litellm, when a key is set as well
        return "OMNI_LLM_API_BASE has user:password@ in it and OMNI_LLM_API_KEY is set: drop one of them"
    if "llm provider not provided" in text:
        return f"litellm cannot tell the provider from the name: prefix it, e.g. openai/{model}"
    status = getattr(exc, "status_code", None)
    if status == 401:
        return "the endpoint refused the API key (401)"
    if status == 403:
        return "the endpoint refused this API key access (403)"
    if status == 404 and "model" in text:
        return f"the endpoint does not know the model {model} (404)"
    if status == 404:
        return (
            "the endpoint has no chat completions route (404): check OMNI_LLM_API_BASE (often it ends in /v1)"
        )
    if status == 400 and "model" in text:
        return f"the endpoint refused the model {model} (400)"
    if status == 429:
        return "the endpoint is rate-limiting this key, or its quota is used up (429)"
    if isinstance(status, int):
        return f"the endpoint answered HTTP {status}"
    return f"the call failed ({type(exc).__name__})"
