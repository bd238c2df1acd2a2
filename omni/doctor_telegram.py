"""The Telegram check: ``getMe`` with the bot token, which names the bot.

No token is a skipped line, not a failure: a setup may serve only ``omni chat``, the gateway
or MCP clients. The request URL holds the token, so no error text from httpx is printed.
"""

from __future__ import annotations

import time

from omni.doctor_check import PROBE_TIMEOUT_S, Check, network_problem, since
from omni.settings import Settings, mask_url

NAME = "telegram"


async def check_telegram(settings: Settings) -> Check:
    if settings.telegram_token is None or not settings.telegram_token.get_secret_value():
        return Check.skipped(NAME, "OMNI_TELEGRAM_TOKEN is not set (only `omni bot` needs it)")
    import httpx

    root = settings.telegram_api_url.rstrip("/")
    via = mask_url(root)
    url = f"{root}/bot{settings.telegram_token.get_secret_value()}/getMe"
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client:
            response = await client.get(url)
    except httpx.InvalidURL:
        return Check.failed(NAME, "OMNI_TELEGRAM_TOKEN holds characters a URL cannot carry")
    except httpx.HTTPError as exc:
        return Check.failed(NAME, f"{via}: {network_problem(exc) or type(exc).__name__}")
    took = since(started)
    if response.status_code == 401:
        return Check.failed(NAME, "Telegram refused the token (401 Unauthorized): check OMNI_TELEGRAM_TOKEN")
    if response.status_code == 404:
        # What api.telegram.org answers for a string that is not a bot token at all.
        return Check.failed(NAME, f"{via} knows no bot by this token (404): check OMNI_TELEGRAM_TOKEN")
    try:
        data = response.json()
        username = data["result"]["username"] if data.get("ok") else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return Check.failed(NAME, f"{via} did not answer like the Bot API (HTTP {response.status_code})")
    if not username:
        return Check.failed(NAME, f"{via} answered getMe with HTTP {response.status_code}")
    return Check.ok(NAME, f"@{username} via {via} ({took})")
