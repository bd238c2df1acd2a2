"""The `omni` command as a user runs it: a subprocess, its exit code and its output."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from memory.migrate import HEAD_REVISION

SUBCOMMANDS = [["bot"], ["chat"], ["mcp"], ["db"], ["db", "upgrade"], ["doctor"]]


def run(cmd: list[str], *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env=full_env, timeout=60)


def test_help_lists_the_commands(omni_cmd: list[str]) -> None:
    result = run(omni_cmd, "--help")
    assert result.returncode == 0
    for name in ("bot", "chat", "mcp", "db", "doctor"):
        assert name in result.stdout


@pytest.mark.parametrize("sub", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help(omni_cmd: list[str], sub: list[str]) -> None:
    result = run(omni_cmd, *sub, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: omni")


def test_version(omni_cmd: list[str]) -> None:
    from omni import __version__

    result = run(omni_cmd, "--version")
    assert result.returncode == 0 and result.stdout.strip() == f"omni {__version__}"


def test_help_does_not_import_heavy_packages() -> None:
    code = (
        "import sys, omni.cli\n"
        "heavy = {'litellm', 'telegram', 'mcp', 'sqlalchemy', 'uvicorn', 'pydantic', 'alembic'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_db_upgrade_on_empty_file_then_again(omni_cmd: list[str], tmp_path: Path) -> None:
    db = tmp_path / "data" / "omni.db"
    first = run(omni_cmd, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert HEAD_REVISION in first.stdout
    second = run(omni_cmd, "db", "upgrade")
    assert second.returncode == 0, second.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD_REVISION,)]


def test_db_upgrade_honours_database_url(omni_cmd: list[str], tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "x.db"
    result = run(omni_cmd, "db", "upgrade", env={"OMNI_DATABASE_URL": f"sqlite+aiosqlite:///{db}"})
    assert result.returncode == 0, result.stderr
    assert db.exists()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"OMNI_ADMIN_IDS": "12,abc"}, "omni: OMNI_ADMIN_IDS: 'abc' is not a numeric Telegram user id"),
        ({"OMNI_DATABASE_URL": "mysql://x/y"}, "omni: OMNI_DATABASE_URL: driver 'mysql' is not supported"),
        ({"OMNI_LOG_LEVEL": "chatty"}, "omni: OMNI_LOG_LEVEL: Input should be"),
        ({"OMNI_MCP_CONFIG": "/nope/mcp.json"}, "omni: OMNI_MCP_CONFIG: cannot read /nope/mcp.json"),
    ],
)
def test_bad_setting_exits_2_with_one_line(omni_cmd: list[str], env: dict[str, str], expected: str) -> None:
    for sub in (["db", "upgrade"], ["mcp"], ["bot"]):
        result = run(omni_cmd, *sub, env=env)
        assert result.returncode == 2, (sub, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
        assert "Traceback" not in result.stderr


def test_bot_without_token_names_the_setting(omni_cmd: list[str]) -> None:
    result = run(omni_cmd, "bot", env={"OMNI_LLM_MODEL": "openai/x"})
    assert result.returncode == 2
    assert result.stderr.strip() == "omni: OMNI_TELEGRAM_TOKEN: is required by this command but not set"


def test_unreadable_database_location_is_one_line(omni_cmd: list[str], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    result = run(omni_cmd, "db", "upgrade", env={"OMNI_DATABASE_URL": f"sqlite+aiosqlite:///{blocker}/x.db"})
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
