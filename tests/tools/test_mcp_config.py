from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.mcp_config import BUILTIN, RemoteSpec, StdioSpec, server_specs
from omni.errors import SettingsError


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "mcp.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_builtin_server_is_always_there(make_settings: Any) -> None:
    specs = server_specs(make_settings())
    assert list(specs) == [BUILTIN]
    builtin = specs[BUILTIN]
    assert isinstance(builtin, StdioSpec) and builtin.builtin
    assert builtin.command == sys.executable and builtin.args == ["-m", "omni", "mcp"]


def test_builtin_server_gets_no_secrets(make_settings: Any) -> None:
    settings = make_settings(telegram_token="123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghi", llm_api_key="sk-x")
    env = server_specs(settings)[BUILTIN].env  # type: ignore[union-attr]
    assert "sk-x" not in json.dumps(env) and "ABCDEFGHIJ" not in json.dumps(env)
    assert env["OMNI_WORKSPACE"] == str(settings.workspace)


def test_claude_desktop_format_is_read(tmp_path: Path, make_settings: Any) -> None:
    path = _write(
        tmp_path,
        {
            "mcpServers": {
                "files": {"command": "npx", "args": ["-y", "x"], "env": {"A": "1"}},
                "remote": {"url": "http://127.0.0.1:9000/mcp", "headers": {"Authorization": "Bearer t"}},
                "off": {"command": "nope", "disabled": True},
            }
        },
    )
    specs = server_specs(make_settings(mcp_config=path))
    assert list(specs) == [BUILTIN, "files", "remote"]
    assert isinstance(specs["files"], StdioSpec) and specs["files"].env == {"A": "1"}
    assert isinstance(specs["remote"], RemoteSpec) and specs["remote"].headers["Authorization"] == "Bearer t"


def test_skills_can_be_disabled(tmp_path: Path, make_settings: Any) -> None:
    path = _write(tmp_path, {"mcpServers": {"skills": {"disabled": True}}})
    assert server_specs(make_settings(mcp_config=path)) == {}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"mcpServers": {"a": {"command": "x", "colour": "red"}}}, "unknown key 'mcpServers.a.colour'"),
        ({"mcpServers": {"a": {"args": ["x"]}}}, "mcpServers.a.command is missing"),
        ({"servers": {}}, 'has no "mcpServers" object'),
        ({"mcpServers": {"a": {"url": "ftp://x"}}}, "mcpServers.a"),
    ],
)
def test_bad_config_names_file_and_problem(
    tmp_path: Path, make_settings: Any, data: dict[str, Any], expected: str
) -> None:
    path = _write(tmp_path, data)
    settings = make_settings(mcp_config=path)
    with pytest.raises(SettingsError) as info:
        server_specs(settings)
    message = str(info.value)
    assert message.startswith(f"OMNI_MCP_CONFIG: {path}")
    assert expected in message and "\n" not in message
