"""Every test gets a clean environment and its own data directory."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from omni.settings import Settings, load_settings

pytest_plugins = ["tests.postgres"]  # postgres_server, postgres_url

# Provider keys a developer may have exported; no test may reach a real service with them.
_PROVIDER_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def clean_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Strip OMNI_* and provider keys, run in a temp cwd (so no stray .env), data in tmp."""
    for name in list(os.environ):
        if name.startswith("OMNI_") or name in _PROVIDER_VARS:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMNI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    yield


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings with a temp data dir; keyword arguments override fields."""

    def factory(**overrides: Any) -> Settings:
        overrides.setdefault("data_dir", tmp_path / "data")
        return load_settings(**overrides)

    return factory


@pytest.fixture
def omni_cmd() -> list[str]:
    """The command line that runs the real `omni` of this checkout as a subprocess."""
    return [sys.executable, "-m", "omni"]
