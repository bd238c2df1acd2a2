"""`omni` commands and the MCP servers file, as a user meets them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools.conftest import EXTRA_SERVER


def run(cmd: list[str], *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=120, input=""
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"mcpServers": {"a": {"command": "x", "color": "red"}}}', "unknown key 'mcpServers.a.color'"),
        ('{"mcpServers": {"a": {"args": []}}}', "mcpServers.a.command is missing"),
        ('{"mcpServers": ', "is not valid JSON"),
    ],
)
@pytest.mark.parametrize("command", [["chat"], ["bot"]])
def test_bad_mcp_config_exits_2_naming_file_and_problem(
    omni_cmd: list[str], tmp_path: Path, content: str, problem: str, command: list[str]
) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(content)
    env = {
        "OMNI_MCP_CONFIG": str(config),
        "OMNI_LLM_MODEL": "openai/x",
        "OMNI_TELEGRAM_TOKEN": "123456:" + "A" * 35,
    }
    result = run(omni_cmd, *command, env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"omni: OMNI_MCP_CONFIG: {config}"), result.stderr
    assert problem in lines[0]


def test_doctor_reports_each_mcp_server(omni_cmd: list[str], tmp_path: Path) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "extra": {"command": sys.executable, "args": [str(EXTRA_SERVER)]},
                    "broken": {"command": sys.executable, "args": ["-c", "raise SystemExit(3)"]},
                }
            }
        )
    )
    result = run(omni_cmd, "doctor", env={"OMNI_MCP_CONFIG": str(config)})
    assert result.returncode == 1
    assert "✓ mcp skills: " in result.stdout
    assert "✓ mcp extra: 8 tools" in result.stdout
    assert "✗ mcp broken: " in result.stdout
