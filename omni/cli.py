"""The ``omni`` command: parses arguments, builds Settings once, wires the packages.

Only argparse is imported at the top so ``omni --help`` stays instant (pydantic alone costs
~300 ms); every command imports its settings and package inside its function.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from omni import __version__
from omni.errors import OmniError, SettingsError

if TYPE_CHECKING:
    from omni.settings import Settings

EXIT_SETTINGS = 2


def _prepare(*required: str, migrate: bool = True, tools: bool = False, workspace: bool = True) -> Settings:
    """Settings, logging, usable folders and (usually) a database at head: every command's start.

    ``tools``: the command starts MCP servers, so their config file is checked up front too.
    ``workspace``: the command (or a server it starts) writes to OMNI_WORKSPACE.
    """
    from omni.logging import setup_logging
    from omni.settings import check_folders, load_settings

    settings = load_settings()
    settings.require(*required)
    setup_logging(settings.log_level, settings.secrets(), settings.log_format)
    check_folders(settings, workspace=workspace)
    if tools:
        _check_mcp_config(settings)
    if migrate:
        _migrate(settings, fast=True)
    return settings


def _migrate(settings: Settings, *, fast: bool) -> str:
    """Bring the database to head; a database that cannot be opened is a bad setting.

    One that is locked, newer than this code or damaged is not (its StoreError ends with 1).
    """
    from memory.errors import StoreUnavailable
    from memory.migrate import HEAD_REVISION, ensure_upgraded, upgrade
    from omni.settings import require_driver

    require_driver(settings.database_url)
    try:
        if fast:
            ensure_upgraded(settings.database_url)
            return HEAD_REVISION
        return upgrade(settings.database_url)
    except StoreUnavailable as exc:
        raise SettingsError(f"OMNI_DATABASE_URL: {exc}") from None


def _check_mcp_config(settings: Settings) -> None:
    """A broken OMNI_MCP_CONFIG stops the command before anything starts (exit 2)."""
    from agent.mcp_config import server_specs

    server_specs(settings)


def cmd_bot(args: argparse.Namespace) -> int:
    settings = _prepare("telegram_token", "llm_model", tools=True)
    from bot.run import serve

    return asyncio.run(serve(settings))


def cmd_chat(args: argparse.Namespace) -> int:
    settings = _prepare("llm_model", tools=True)
    from agent.chat import run_chat

    return asyncio.run(run_chat(settings, session=args.session))


def cmd_gateway(args: argparse.Namespace) -> int:
    settings = _prepare("llm_model", tools=True, migrate=False)
    from gateway.serve import check_access, serve

    check_access(settings, args.host)  # an unsafe bind is refused before the database is touched
    _migrate(settings, fast=True)
    return asyncio.run(serve(settings, host=args.host, port=args.port))


def _port(value: str) -> int:
    """argparse type for --port: a bad value is argparse's one-line usage error (exit 2)."""
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (0-65535; 0 picks a free one)")
    return int(value)


def cmd_mcp(args: argparse.Namespace) -> int:
    settings = _prepare(migrate=False)  # the skills server does not open the database
    from mcp_server.transports import serve

    return asyncio.run(serve(settings, transport=args.transport, host=args.host, port=args.port))


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from omni.settings import mask_url

    settings = _prepare(migrate=False, workspace=False)
    revision = _migrate(settings, fast=False)
    print(f"database at revision {revision}: {mask_url(settings.database_url)}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from omni.doctor import run_doctor

    return asyncio.run(run_doctor())


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omni",
        description="A Telegram-first personal assistant with memory and MCP skills.",
    )
    parser.add_argument("--version", action="version", version=f"omni {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    add("bot", cmd_bot, "Run the Telegram bot (long polling); applies migrations first.")

    chat = add("chat", cmd_chat, "Chat with the agent in the terminal: one message per line on stdin.")
    chat.add_argument("--session", default="default", help="conversation name (default: %(default)s)")

    gateway = add("gateway", cmd_gateway, "Serve the agent over HTTP: POST /message, GET /health.")
    gateway.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    gateway.add_argument(
        "--port", type=_port, default=8080, help="port, 0 picks a free one (default: %(default)s)"
    )

    mcp = add("mcp", cmd_mcp, "Run the skills MCP server (stdio by default).")
    mcp.add_argument("--transport", choices=("stdio", "http", "sse"), default="stdio")
    mcp.add_argument("--host", default="127.0.0.1", help="bind address for http/sse (default: %(default)s)")
    mcp.add_argument("--port", type=_port, default=8765, help="port for http/sse (default: %(default)s)")

    db = add("db", lambda _: _usage(db), "Database maintenance.")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION")
    up = db_sub.add_parser("upgrade", help="Apply pending migrations to OMNI_DATABASE_URL.")
    up.set_defaults(func=cmd_db_upgrade)

    add("doctor", cmd_doctor, "Check settings, database and services; exit 1 on any failure.")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except SettingsError as exc:
        print(f"omni: {exc}", file=sys.stderr)
        code = EXIT_SETTINGS
    except OmniError as exc:
        print(f"omni: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    _exit(code)


def _exit(code: int) -> NoReturn:
    """End the process. The command has closed what it opened (servers, children, database),
    so the interpreter's own teardown would only free memory object by object, which costs
    about a second once litellm is imported: every stop and restart would wait for it."""
    import logging
    import os

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to say there
            pass
    os._exit(code)
