"""``omni doctor``: one line per check, ✓, ✗ or – (skipped) with the reason; exit 1 on any ✗.

Checks: settings; the database (exists, writable, at head); the LLM (a one-token completion,
with its latency); the Telegram token (getMe names the bot; no token is skipped); each MCP
server the agent would start (built-in skills + OMNI_MCP_CONFIG), with its tool count; the web
search provider (one query; none set is skipped).
``omni/doctor_check.py`` holds the line; each other ``omni/doctor_*.py`` module one check.

Settings come first; if they are invalid nothing else can be checked and the command ends
with exit 2 like every other command. The other checks run at once and print in a fixed order.
Every line passes one redaction before it is printed: no check may show a secret, and this
makes sure none does, whatever text a library put in an error.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable

from omni.doctor_check import Check, Outcome
from omni.doctor_database import check_database
from omni.doctor_llm import check_llm
from omni.doctor_mcp import check_mcp_servers
from omni.doctor_search import check_search
from omni.doctor_telegram import check_telegram
from omni.errors import SettingsError
from omni.logging import RedactingFilter, setup_logging
from omni.settings import check_folders, load_settings, mask_urls_in

EXIT_FAILED = 1
EXIT_SETTINGS = 2


async def run_doctor() -> int:
    try:
        settings = load_settings()
        check_folders(settings)  # as every other command does before it starts
    except SettingsError as exc:
        print(Check.failed("settings", str(exc)).line())
        return EXIT_SETTINGS
    secrets = settings.secrets()
    # Each failure is a line below; the warnings libraries log about the same would repeat it.
    setup_logging("DEBUG" if settings.log_level == "DEBUG" else "ERROR", secrets, settings.log_format)
    redact = RedactingFilter(secrets).redact

    def show(check: Check) -> None:
        print(redact(mask_urls_in(check.line())), flush=True)

    show(Check.ok("settings", f"valid (data in {settings.data_dir})"))
    checks: list[Awaitable[Check | list[Check]]] = [
        check_database(settings),
        check_llm(settings),
        check_telegram(settings),
        check_mcp_servers(settings),
        check_search(settings),
    ]
    tasks = [asyncio.ensure_future(check) for check in checks]
    failed = False
    for task in tasks:  # in order, each as soon as it and those before it are done
        result = await task
        for check in result if isinstance(result, list) else [result]:
            show(check)
            failed |= check.outcome is Outcome.FAILED
    sys.stdout.flush()
    return EXIT_FAILED if failed else 0
