"""Who may talk to ``omni mcp`` over HTTP/SSE: Host/Origin checks on every bind, the bearer token,
and the settings that stop the command before it serves anything (security audit, issue 12)."""

from __future__ import annotations

import socket
import subprocess

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent

from mcp_server.http import HostPolicy
from omni.errors import SettingsError
from tests.mcp_server.conftest import StartServer, free_port

TOKEN = "test-token-4f1c2a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REMOTE_ENV = {"OMNI_MCP_TOKEN": TOKEN, "OMNI_MCP_ALLOWED_HOSTS": "omni.example,other.example:9000"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
MCP_ACCEPT = {"Accept": "application/json, text/event-stream"}
EXIT_TIMEOUT_S = 20


def status(method: str, url: str, **headers: str) -> int:
    body = INITIALIZE if method == "POST" else None
    return httpx.request(method, url, headers={**MCP_ACCEPT, **headers}, json=body, timeout=5).status_code


def assert_unauthorized(method: str, url: str, **headers: str) -> None:
    body = INITIALIZE if method == "POST" else None
    response = httpx.request(method, url, headers={**MCP_ACCEPT, **headers}, json=body, timeout=5)
    assert response.status_code == 401, (url, response.text)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"] == "unauthorized"


def test_wildcard_bind_checks_host_and_origin_on_mcp(http_server: StartServer) -> None:
    base, _ = http_server("http", "--host", "0.0.0.0", env=REMOTE_ENV)
    mcp = f"{base}/mcp"
    assert status("POST", mcp, Host="evil.com", **AUTH) == 421
    assert status("POST", mcp, Host="127.0.0.1.evil.com", **AUTH) == 421
    assert status("POST", mcp, Host="other.example:9001", **AUTH) == 421
    assert status("GET", f"{base}/health", Host="evil.com") == 421
    assert status("POST", mcp, Origin="http://evil.com", **AUTH) == 403
    assert status("POST", mcp, Origin="http://evil.com:8765", **AUTH) == 403
    assert status("POST", mcp, Origin="null", **AUTH) == 403
    # OMNI_MCP_ALLOWED_HOSTS: "name" admits any port, "name:port" only that one.
    assert status("POST", mcp, Host="omni.example:8765", Origin="http://omni.example:8765", **AUTH) == 200
    assert status("POST", mcp, Host="other.example:9000", Origin="https://other.example:9000", **AUTH) == 200
    assert status("GET", f"{base}/ready", Host="OMNI.example", **AUTH) == 200
    assert status("POST", mcp, **AUTH) == 200  # no Origin: a non-browser client


def test_wildcard_bind_checks_host_and_origin_on_sse(http_server: StartServer) -> None:
    base, _ = http_server("sse", "--host", "0.0.0.0", env=REMOTE_ENV)
    messages = f"{base}/messages?session_id=00000000000000000000000000000000"
    assert status("GET", f"{base}/sse", Host="evil.com", **AUTH) == 421
    assert status("GET", f"{base}/sse", Origin="http://evil.com", **AUTH) == 403
    assert status("POST", messages, Host="evil.com", **AUTH) == 421
    assert status("POST", messages, Origin="http://evil.com", **AUTH) == 403
    headers = {"Host": "omni.example:8765", "Origin": "http://omni.example:8765", **AUTH}
    with httpx.stream("GET", f"{base}/sse", headers=headers, timeout=5) as stream:
        assert stream.status_code == 200
        assert next(stream.iter_lines()) == "event: endpoint"


def check_token_gate(base: str, routes: tuple[tuple[str, str], ...]) -> None:
    """Every route refuses a missing, wrong or non-Bearer token; /health needs none."""
    for method, path in routes:
        assert_unauthorized(method, f"{base}{path}")
        assert_unauthorized(method, f"{base}{path}", Authorization="Bearer wrong-token")
        assert_unauthorized(method, f"{base}{path}", Authorization=f"Basic {TOKEN}")
    assert httpx.get(f"{base}/health").text == "ok"
    assert httpx.get(f"{base}/ready", headers=AUTH).json()["tools"] >= 16
    assert httpx.get(f"{base}/ready", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200


@pytest.mark.anyio
async def test_http_needs_the_token_except_for_health(http_server: StartServer) -> None:
    base, _ = http_server("http", env={"OMNI_MCP_TOKEN": TOKEN})
    check_token_gate(base, (("POST", "/mcp"), ("GET", "/mcp"), ("DELETE", "/mcp"), ("GET", "/ready")))
    async with (
        httpx2.AsyncClient(headers=AUTH, timeout=httpx2.Timeout(30, read=300)) as client,
        streamable_http_client(f"{base}/mcp", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("greet", {"name": "Ann"})
        assert [c.text for c in result.content if isinstance(c, TextContent)] == ["hello Ann"]


@pytest.mark.anyio
async def test_sse_needs_the_token_except_for_health(http_server: StartServer) -> None:
    base, _ = http_server("sse", env={"OMNI_MCP_TOKEN": TOKEN})
    check_token_gate(base, (("GET", "/sse"), ("POST", "/messages?session_id=x"), ("GET", "/ready")))
    async with (
        sse_client(f"{base}/sse", headers=AUTH) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("greet", {"name": "Bo"})
        assert [c.text for c in result.content if isinstance(c, TextContent)] == ["hello Bo"]


def run_omni_mcp(omni_cmd: list[str], env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [*omni_cmd, "mcp", *args], env=env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=EXIT_TIMEOUT_S,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"omni mcp {' '.join(args)} kept running instead of refusing to start")


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (("--transport", "http", "--host", "0.0.0.0"), {}, "OMNI_MCP_TOKEN"),
        (("--transport", "sse", "--host", "192.0.2.10"), {}, "OMNI_MCP_TOKEN"),
        (("--transport", "http"), {"OMNI_SHELL_ENABLED": "true"}, "OMNI_MCP_TOKEN"),
        (("--transport", "sse"), {"OMNI_SHELL_ENABLED": "true", "OMNI_MCP_TOKEN": ""}, "OMNI_MCP_TOKEN"),
        (("--transport", "http"), {"OMNI_MCP_ALLOWED_HOSTS": "a/b"}, "OMNI_MCP_ALLOWED_HOSTS"),
    ],
)
def test_unsafe_http_settings_refuse_to_start_with_one_line(
    omni_cmd: list[str], server_env: dict[str, str], args: tuple[str, ...], env: dict[str, str], named: str
) -> None:
    result = run_omni_mcp(omni_cmd, {**server_env, **env}, *args, "--port", str(free_port()))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"omni: {named}: ")


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_bad_port_is_a_usage_error(omni_cmd: list[str], server_env: dict[str, str], port: str) -> None:
    result = run_omni_mcp(omni_cmd, server_env, "--transport", "http", "--port", port)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "argument --port" in result.stderr


def test_port_in_use_is_one_error_line_and_exit_1(omni_cmd: list[str], server_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_omni_mcp(omni_cmd, server_env, "--transport", "http", "--port", port)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if "ERROR" in line or "omni:" in line] == [
        next(line for line in result.stderr.splitlines() if f"cannot listen on 127.0.0.1:{port}" in line)
    ]


def test_stdio_needs_no_token_even_with_the_shell(omni_cmd: list[str], server_env: dict[str, str]) -> None:
    result = run_omni_mcp(omni_cmd, {**server_env, "OMNI_SHELL_ENABLED": "true"})
    assert result.returncode == 0, result.stderr  # stdin is /dev/null: EOF ends it cleanly


@pytest.mark.parametrize(
    ("bind", "host", "admitted"),
    [
        ("127.0.0.1", "localhost:8765", True),
        ("127.0.0.1", "[::1]:8765", True),
        ("127.0.0.1", "192.0.2.10:8765", False),
        ("192.0.2.10", "192.0.2.10:8765", True),
        ("::", "[::1]", True),
        ("::", "[::2]:8765", False),
        ("fd00::5", "[fd00::5]:8765", True),
        ("0.0.0.0", "0.0.0.0:8765", False),
        ("0.0.0.0", "localhost:*", False),
        ("0.0.0.0", "localhost:8765@evil.com", False),
        ("0.0.0.0", "", False),
    ],
)
def test_host_policy_matches_names_and_ports(bind: str, host: str, admitted: bool) -> None:
    assert HostPolicy.build(bind, ()).admits_host(host) is admitted


@pytest.mark.parametrize(
    ("entry", "host", "admitted"),
    [
        ("omni.example", "omni.example", True),
        ("omni.example:*", "omni.example:1234", True),
        ("omni.example:443", "omni.example", True),  # a Host without port is 80 or 443
        ("omni.example:9000", "omni.example:9001", False),
        ("[fd00::1]:9000", "[fd00::1]:9000", True),
        ("fd00::1", "[fd00::1]:1", True),
    ],
)
def test_allowed_hosts_entries(entry: str, host: str, admitted: bool) -> None:
    policy = HostPolicy.build("0.0.0.0", (entry,))
    assert policy.admits_host(host) is admitted
    assert policy.admits_origin(f"https://{host}") is admitted


@pytest.mark.parametrize(
    ("origin", "admitted"),
    [
        ("http://127.0.0.1:8765", True),
        ("https://localhost", True),
        ("http://[::1]:3000", True),
        ("http://omni.example:9000", True),
        ("ftp://localhost", False),
        ("http://localhost.evil.com", False),
        ("http://user@localhost", False),
        ("http://localhost:99999", False),
        ("http://localhost/path", False),
        ("null", False),
    ],
)
def test_origin_policy(origin: str, admitted: bool) -> None:
    assert HostPolicy.build("0.0.0.0", ("omni.example",)).admits_origin(origin) is admitted


@pytest.mark.parametrize("entry", ["*", "omni.example:", "omni.example:70000", "http://omni.example", "[::1"])
def test_malformed_allowed_hosts_entry_is_a_settings_error(entry: str) -> None:
    with pytest.raises(SettingsError, match="^OMNI_MCP_ALLOWED_HOSTS: "):
        HostPolicy.build("127.0.0.1", (entry,))
