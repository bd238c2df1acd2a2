"""Run the real ``omni mcp`` as a subprocess (stdio or HTTP) for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, Protocol

import httpx
import pytest

from tests.mcp_server.skillkit import write_skill

START_TIMEOUT_S = 20


@pytest.fixture
def extra_dir(tmp_path: Path) -> Path:
    root = tmp_path / "extra"
    write_skill(root, "hello")
    return root


@pytest.fixture
def server_env(tmp_path: Path, extra_dir: Path) -> dict[str, str]:
    """The environment for an ``omni mcp`` child: temp data, workspace and an extra skills dir."""
    return {
        **os.environ,
        "OMNI_DATA_DIR": str(tmp_path / "data"),
        "OMNI_WORKSPACE": str(tmp_path / "ws"),
        "OMNI_SKILLS_DIRS": str(extra_dir),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"omni mcp exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=1).text == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("omni mcp did not become healthy")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class StartServer(Protocol):
    """``start(transport, *extra_args, env={...})`` -> (base URL on 127.0.0.1, process)."""

    def __call__(
        self, transport: str, *args: str, env: Mapping[str, str] | None = None
    ) -> tuple[str, subprocess.Popen[bytes]]: ...


@pytest.fixture
def http_server(omni_cmd: list[str], server_env: dict[str, str], tmp_path: Path) -> Iterator[StartServer]:
    """``start("http"|"sse", *args, env=...)`` -> (base URL, process); all stopped afterwards.

    ``env`` is added to ``server_env``; ``args`` go after ``--port`` (e.g. ``--host 0.0.0.0``).
    """
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[BinaryIO] = []

    def start(
        transport: str, *args: str, env: Mapping[str, str] | None = None
    ) -> tuple[str, subprocess.Popen[bytes]]:
        port = free_port()
        log = (tmp_path / f"{transport}-{port}.log").open("wb")
        logs.append(log)
        proc = subprocess.Popen(
            [*omni_cmd, "mcp", "--transport", transport, "--port", str(port), *args],
            env={**server_env, **(env or {})},
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, proc)
        return base, proc

    yield start
    for proc in procs:
        stop(proc)
    for log in logs:
        log.close()
