"""Third-party clients against the real server: the official conformance suite and MCP Inspector.

Both come from npm through ``npx``; the tests skip (with the reason) when npx is missing or the
package cannot be downloaded, and fail on anything else.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.mcp_server.conftest import StartServer

CONFORMANCE = "@modelcontextprotocol/conformance@0.1.13"
INSPECTOR = "@modelcontextprotocol/inspector"
SCENARIOS = (
    "server-initialize",
    "ping",
    "logging-set-level",
    "tools-list",
    "resources-list",
    "prompts-list",
    "completion-complete",
    "dns-rebinding-protection",
)
_DOWNLOAD_ERRORS = ("npm ERR!", "npm error", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "E404", "ECONNREFUSED")

pytestmark = pytest.mark.skipif(shutil.which("npx") is None, reason="npx (Node.js) is not installed")


def npx(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["npx", "-y", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0 and any(marker in proc.stderr for marker in _DOWNLOAD_ERRORS):
        pytest.skip(f"npx could not fetch {args[0]}: {proc.stderr.strip().splitlines()[-1]}")
    return proc


def test_official_conformance_scenarios_pass(http_server: StartServer) -> None:
    base, _ = http_server("http")
    url = f"{base}/mcp"
    npx(CONFORMANCE, "--help")  # fetch once, so the parallel runs below do not race the download

    def run(scenario: str) -> subprocess.CompletedProcess[str]:
        return npx(CONFORMANCE, "server", "--url", url, "--scenario", scenario)

    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = dict(zip(SCENARIOS, pool.map(run, SCENARIOS), strict=True))
    failed = {
        name: run.stdout[-800:] + run.stderr[-400:] for name, run in runs.items() if run.returncode != 0
    }
    assert not failed, failed
    for name, run in runs.items():
        assert "0 failed" in run.stdout, (name, run.stdout[-800:])


def test_mcp_inspector_cli_lists_and_calls_tools(omni_cmd: list[str], tmp_path: Path) -> None:
    server = [*omni_cmd, "mcp"]
    env = ["-e", f"OMNI_DATA_DIR={tmp_path / 'data'}", "-e", f"OMNI_WORKSPACE={tmp_path / 'ws'}"]
    listed = npx(INSPECTOR, "--cli", *env, *server, "--method", "tools/list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    names = {tool["name"] for tool in json.loads(listed.stdout)["tools"]}
    assert {"read_file", "write_file", "git_status", "fetch_url", "current_time"} <= names
    called = npx(INSPECTOR, "--cli", *env, *server, "--method", "tools/call", "--tool-name", "write_file",
                 "--tool-arg", "path=hello.txt", "--tool-arg", "content=hi")  # fmt: skip
    assert called.returncode == 0, called.stderr[-2000:]
    assert json.loads(called.stdout)["isError"] is False
    assert (tmp_path / "ws" / "hello.txt").read_text() == "hi"
