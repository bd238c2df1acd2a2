"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none runs here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_bot_service_runs_the_bot_with_env_file_and_data_volume(compose: dict[str, Any]) -> None:
    bot = compose["services"]["bot"]
    assert bot["command"] == ["omni", "bot"]
    assert bot["env_file"] == ".env"
    assert "./data:/data" in bot["volumes"]
    assert bot["restart"] in ("unless-stopped", "always")
    assert "ports" not in bot  # long polling needs no inbound port


def test_mcp_service_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    mcp = compose["services"]["mcp"]
    assert mcp["command"][:4] == ["omni", "mcp", "--transport", "http"]
    assert mcp["ports"], "the MCP service must publish its port"
    for mapping in mcp["ports"]:
        assert str(mapping).startswith("127.0.0.1:"), mapping


def test_dockerfile_is_multi_stage_non_root_with_data_volume() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2
    assert "uv sync --frozen" in text
    assert "\nUSER omni" in text
    assert 'VOLUME ["/data"]' in text


def _compose_cli() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_compose_cli_accepts_the_file(tmp_path: Path) -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no compose CLI installed (docker compose plugin or docker-compose)")
    # The file names .env, which a fresh clone has not got yet: validate from a copy beside one.
    (tmp_path / ".env").write_text("OMNI_TELEGRAM_TOKEN=\n")
    (tmp_path / "docker-compose.yml").write_text((ROOT / "docker-compose.yml").read_text())
    result = subprocess.run([*cli, "config", "-q"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
