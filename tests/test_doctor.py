"""`omni doctor` as a user runs it: a real subprocess against the fake LLM and Bot API.

Each check is made to fail on its own while the others pass, so every line is shown to name
its own problem; one run has all of them pass. Every run is also checked for secrets: the bot
token and API key never appear in its output, whatever failed, nor do the database passwords,
URL credentials and MCP server secrets of the tests that set them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from memory.migrate import HEAD_REVISION, known_revisions, upgrade
from omni.doctor_check import network_problem
from tests.fakes.llm_api import MODEL_ID, FakeLLM
from tests.fakes.search_api import BRAVE_PATH, SEARXNG_PATH, FakeSearch
from tests.fakes.server import serve_in_thread
from tests.fakes.telegram_api import BOT_USERNAME, TOKEN, FakeTelegram
from tests.postgres import PostgresServer

API_KEY = "sk-doctor-4b1d9e7f2a"
MODEL = f"openai/{MODEL_ID}"
# Values that must never be printed, wherever they come from.
SECRET_VARS = ("OMNI_TELEGRAM_TOKEN", "OMNI_LLM_API_KEY", "OMNI_BRAVE_API_KEY")
SEARCH_KEY = "brave-doctor-key-93f1"
MS = r"\d+ ms"


def doctor(
    cmd: list[str], env: dict[str, str], prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run `omni doctor`; assert it printed no traceback and no secret of ``env``."""
    result = subprocess.run(
        [*prefix, *cmd, "doctor"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    for secret in [env[name] for name in SECRET_VARS if env.get(name)]:
        assert secret not in output, f"a secret was printed:\n{output}"
    return result


def lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """stdout's lines by check name: {"llm": "✓ llm: ...", "mcp skills": ...}."""
    out = {}
    for line in result.stdout.splitlines():
        name = line[2:].partition(":")[0]
        out[name] = line
    return out


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def llm() -> Iterator[tuple[FakeLLM, str]]:
    fake = FakeLLM()
    with serve_in_thread(fake.app) as base:
        yield fake, base


@pytest.fixture(scope="module")
def telegram() -> Iterator[str]:
    with serve_in_thread(FakeTelegram().app) as base:
        yield base


@pytest.fixture(scope="module")
def head_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database migrated to head once per module; tests get copies (migrating takes ~1 s)."""
    path = tmp_path_factory.mktemp("template") / "omni.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def copy_database(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return target


@pytest.fixture
def db(head_database: Path, tmp_path: Path) -> Path:
    """This test's database at head, where omni looks by default (OMNI_DATA_DIR/omni.db)."""
    return copy_database(head_database, tmp_path / "data" / "omni.db")


@pytest.fixture(scope="module")
def searches() -> Iterator[tuple[FakeSearch, str]]:
    fake = FakeSearch(key=SEARCH_KEY)
    with serve_in_thread(fake.app) as base:
        yield fake, base


@pytest.fixture
def green(
    llm: tuple[FakeLLM, str], telegram: str, db: Path, searches: tuple[FakeSearch, str]
) -> dict[str, str]:
    """An environment in which every check passes; tests break one thing in it."""
    fake, base = llm
    fake.reset()
    fake.api_key, fake.models = API_KEY, frozenset({MODEL_ID})
    return {
        "OMNI_LLM_MODEL": MODEL,
        "OMNI_LLM_API_BASE": f"{base}/v1",
        "OMNI_LLM_API_KEY": API_KEY,
        "OMNI_TELEGRAM_TOKEN": TOKEN,
        "OMNI_TELEGRAM_API_URL": telegram,
        # A self-hosted SearXNG, here on 127.0.0.1: allowed, as its admin would.
        "OMNI_SEARXNG_URL": searches[1] + SEARXNG_PATH,
        "OMNI_WEB_SEARCH_ALLOW_PRIVATE": "true",
    }


def assert_only_failure(result: subprocess.CompletedProcess[str], name: str, expected: str) -> None:
    """``name``'s line is ``✗ name: expected``; every other line passed; exit code 1."""
    found = lines(result)
    assert found.get(name) == f"✗ {name}: {expected}", result.stdout
    others = [line for key, line in found.items() if key != name]
    assert others and all(line.startswith("✓ ") for line in others), result.stdout
    assert result.returncode == 1


# All green.


def test_every_check_passes(omni_cmd: list[str], green: dict[str, str], llm: tuple[FakeLLM, str]) -> None:
    result = doctor(omni_cmd, green)
    assert result.returncode == 0, result.stdout + result.stderr
    found = lines(result)
    base = green["OMNI_LLM_API_BASE"]
    assert list(found) == ["settings", "database", "llm", "telegram", "mcp skills", "web search"]
    assert re.fullmatch(rf"✓ web search: SearXNG answered with 1 result \({MS}\)", found["web search"])
    assert found["database"].endswith(f"at revision {HEAD_REVISION}, writable")
    assert re.fullmatch(rf"✓ llm: {MODEL} at {re.escape(base)} answered in {MS}", found["llm"])
    via = green["OMNI_TELEGRAM_API_URL"]
    assert re.fullmatch(rf"✓ telegram: @{BOT_USERNAME} via {re.escape(via)} \({MS}\)", found["telegram"])
    assert re.fullmatch(rf"✓ mcp skills: [1-9]\d* tools, started in {MS}", found["mcp skills"])
    # One completion of one token, with the key: what the agent's calls carry, at least cost.
    fake, _ = llm
    assert [body["max_tokens"] for body in fake.requests] == [1]
    assert fake.headers[0]["authorization"] == f"Bearer {API_KEY}"


def test_bad_setting_exits_2_with_one_line(omni_cmd: list[str]) -> None:
    result = doctor(omni_cmd, {"OMNI_ADMIN_IDS": "x"})
    assert result.returncode == 2
    assert result.stdout.strip() == "✗ settings: OMNI_ADMIN_IDS: 'x' is not a numeric Telegram user id"


# The database.


def test_missing_database(omni_cmd: list[str], green: dict[str, str], db: Path) -> None:
    db.unlink()
    result = doctor(omni_cmd, green)
    assert_only_failure(result, "database", f"{db} does not exist yet (run `omni db upgrade`)")


def test_database_behind_head(omni_cmd: list[str], green: dict[str, str], db: Path) -> None:
    older = sorted(known_revisions() - {HEAD_REVISION})[-1]
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (older,))
    result = doctor(omni_cmd, green)
    expected = f"{db} is at revision {older}, head is {HEAD_REVISION} (run `omni db upgrade`)"
    assert_only_failure(result, "database", expected)


def bound_by_permissions() -> tuple[str, ...]:
    """A command prefix under which file permissions bind the process, root included."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root ignores permission bits, and setpriv is not here to drop that power")
    # Without CAP_DAC_OVERRIDE root obeys the bits like anyone (the files stay its own).
    return (setpriv, "--inh-caps=-all", "--bounding-set=-all", "--")


def test_read_only_database_file(omni_cmd: list[str], green: dict[str, str], db: Path) -> None:
    db.chmod(0o444)
    result = doctor(omni_cmd, green, bound_by_permissions())
    assert_only_failure(result, "database", f"{db} is read-only (no write permission on the file)")


def test_database_in_a_read_only_folder(
    omni_cmd: list[str], green: dict[str, str], head_database: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "readonly"
    db = copy_database(head_database, folder / "omni.db")
    folder.chmod(0o555)
    try:
        env = {**green, "OMNI_DATABASE_URL": f"sqlite+aiosqlite:///{db}"}
        result = doctor(omni_cmd, env, bound_by_permissions())
    finally:
        folder.chmod(0o755)
    expected = f"the folder {folder} is not writable: SQLite writes its journal beside omni.db"
    assert_only_failure(result, "database", expected)


def test_database_on_postgresql(
    omni_cmd: list[str], green: dict[str, str], postgres_server: PostgresServer, postgres_url: str
) -> None:
    env = {**green, "OMNI_DATABASE_URL": postgres_url}
    shown = make_url(postgres_url).render_as_string(hide_password=True)  # user:***@
    result = doctor(omni_cmd, env)
    assert result.returncode == 0, result.stdout
    assert lines(result)["database"] == f"✓ database: {shown} at revision {HEAD_REVISION}, writable"
    # Connected and at head, yet only reading: as on a standby, or a database set read-only.
    name = make_url(postgres_url).database
    postgres_server.run(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    result = doctor(omni_cmd, env)
    assert_only_failure(result, "database", f"{shown} cannot be written (ReadOnlySQLTransactionError)")
    password = make_url(postgres_url).password
    assert f":{password}@" not in result.stdout + result.stderr


def test_database_password_is_masked(omni_cmd: list[str], green: dict[str, str], tmp_path: Path) -> None:
    # An importable stand-in for asyncpg: the URL passes the driver check, connecting fails.
    stub = tmp_path / "stub" / "asyncpg"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("")
    env = {
        **green,
        "PYTHONPATH": str(stub.parent),
        "OMNI_DATABASE_URL": "postgresql+asyncpg://omni:pg-s3cret@127.0.0.1:1/omni",
    }
    result = doctor(omni_cmd, env)
    expected = "postgresql+asyncpg://omni:***@127.0.0.1:1/omni cannot be opened (AttributeError)"
    assert_only_failure(result, "database", expected)
    assert "pg-s3cret" not in result.stdout + result.stderr


# The LLM.


def test_llm_not_configured(omni_cmd: list[str], green: dict[str, str]) -> None:
    env = {**green, "OMNI_LLM_MODEL": ""}
    result = doctor(omni_cmd, env)
    assert_only_failure(result, "llm", "OMNI_LLM_MODEL is not set (the bot and `omni chat` need a model)")


def test_llm_down(omni_cmd: list[str], green: dict[str, str]) -> None:
    base = f"http://127.0.0.1:{closed_port()}/v1"
    result = doctor(omni_cmd, {**green, "OMNI_LLM_API_BASE": base})
    assert_only_failure(result, "llm", f"{MODEL} at {base}: cannot connect: connection refused")


def test_llm_url_with_credentials_and_a_key(omni_cmd: list[str], green: dict[str, str]) -> None:
    # The client cannot send both; the agent's calls would fail the same way.
    base = green["OMNI_LLM_API_BASE"].replace("http://", "http://alice:sk-in-url-123@")
    result = doctor(omni_cmd, {**green, "OMNI_LLM_API_BASE": base})
    shown = base.replace(":sk-in-url-123@", ":***@")
    problem = "OMNI_LLM_API_BASE has user:password@ in it and OMNI_LLM_API_KEY is set: drop one of them"
    assert_only_failure(result, "llm", f"{MODEL} at {shown}: {problem}")
    assert "sk-in-url-123" not in result.stdout + result.stderr


def test_llm_refuses_the_key(omni_cmd: list[str], green: dict[str, str]) -> None:
    result = doctor(omni_cmd, {**green, "OMNI_LLM_API_KEY": "sk-wrong-key-8c2e0d"})
    base = green["OMNI_LLM_API_BASE"]
    assert_only_failure(result, "llm", f"{MODEL} at {base}: the endpoint refused the API key (401)")


def test_llm_does_not_know_the_model(omni_cmd: list[str], green: dict[str, str]) -> None:
    result = doctor(omni_cmd, {**green, "OMNI_LLM_MODEL": "openai/no-such-model"})
    base = green["OMNI_LLM_API_BASE"]
    expected = (
        f"openai/no-such-model at {base}: the endpoint does not know the model openai/no-such-model (404)"
    )
    assert_only_failure(result, "llm", expected)


# Telegram.


def test_telegram_refuses_the_token(omni_cmd: list[str], green: dict[str, str]) -> None:
    result = doctor(omni_cmd, {**green, "OMNI_TELEGRAM_TOKEN": "654321:" + "Z" * 35})
    expected = "Telegram refused the token (401 Unauthorized): check OMNI_TELEGRAM_TOKEN"
    assert_only_failure(result, "telegram", expected)


def test_telegram_unreachable(omni_cmd: list[str], green: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = doctor(omni_cmd, {**green, "OMNI_TELEGRAM_API_URL": url})
    assert_only_failure(result, "telegram", f"{url}: cannot connect: connection refused")


def test_no_telegram_token_is_skipped(omni_cmd: list[str], green: dict[str, str]) -> None:
    env = {**green, "OMNI_TELEGRAM_TOKEN": ""}
    result = doctor(omni_cmd, env)
    assert result.returncode == 0, result.stdout
    found = lines(result)
    assert found["telegram"] == "– telegram: OMNI_TELEGRAM_TOKEN is not set (only `omni bot` needs it)"
    assert all(line.startswith("✓ ") for key, line in found.items() if key != "telegram")


# Web search.


def test_no_search_provider_is_skipped(omni_cmd: list[str], green: dict[str, str]) -> None:
    env = {**green, "OMNI_SEARXNG_URL": ""}
    result = doctor(omni_cmd, env)
    assert result.returncode == 0, result.stdout
    assert lines(result)["web search"].startswith("– web search: no provider set (OMNI_SEARXNG_URL, ")


def test_search_provider_refuses_the_key(
    omni_cmd: list[str], green: dict[str, str], searches: tuple[FakeSearch, str]
) -> None:
    env = {**green, "OMNI_SEARXNG_URL": "", "OMNI_BRAVE_API_KEY": "not-" + SEARCH_KEY}
    env["OMNI_BRAVE_API_URL"] = searches[1] + BRAVE_PATH
    result = doctor(omni_cmd, env)  # the key, echoed back by the fake, is never printed
    found = lines(result)["web search"]
    assert found.startswith("✗ web search: Brave Search: ") and "OMNI_BRAVE_API_KEY" in found, found
    assert result.returncode == 1


def test_private_search_endpoint_not_allowed(omni_cmd: list[str], green: dict[str, str]) -> None:
    result = doctor(omni_cmd, {**green, "OMNI_WEB_SEARCH_ALLOW_PRIVATE": "false"})
    found = lines(result)["web search"]
    assert found.startswith("✗ web search: SearXNG: search endpoint: ") and "ALLOW_PRIVATE" in found, found


# MCP servers.


def test_mcp_servers_that_fail_to_start(omni_cmd: list[str], green: dict[str, str], tmp_path: Path) -> None:
    remote = f"http://bob:mcp-url-s3cret@127.0.0.1:{closed_port()}/mcp"
    servers = {
        "exits": {"command": sys.executable, "args": ["-c", "raise SystemExit(3)"]},
        "absent": {"command": "no-such-mcp-server-7f3a", "env": {"API_TOKEN": "mcp-env-s3cret"}},
        "remote": {"url": remote, "headers": {"Authorization": "Bearer mcp-header-s3cret"}},
    }
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": servers}))
    result = doctor(omni_cmd, {**green, "OMNI_MCP_CONFIG": str(config)})
    assert result.returncode == 1
    found = lines(result)
    assert found["mcp absent"] == "✗ mcp absent: the command 'no-such-mcp-server-7f3a' is not found"
    assert found["mcp exits"].startswith("✗ mcp exits: the process exited before the MCP handshake")
    shown = remote.replace(":mcp-url-s3cret@", ":***@")
    assert found["mcp remote"] == f"✗ mcp remote: {shown}: ConnectError: All connection attempts failed"
    failed = {key for key, line in found.items() if not line.startswith("✓ ")}
    assert failed == {"mcp absent", "mcp exits", "mcp remote"}, result.stdout
    for secret in ("mcp-url-s3cret", "mcp-env-s3cret", "mcp-header-s3cret"):
        assert secret not in result.stdout + result.stderr


# Words for network failures, from the exception chains libraries raise (no server needed).


def chained(*errors: BaseException) -> BaseException:
    """``errors[0]`` raised from ``errors[1]``, raised from ``errors[2]``..., as libraries wrap."""
    for outer, inner in zip(errors, errors[1:], strict=False):
        outer.__cause__ = inner
    return errors[0]


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (chained(RuntimeError("wrapped"), httpx.ReadTimeout("timed out")), "no answer within 5 s"),
        (chained(RuntimeError(), TimeoutError()), "no answer within 5 s"),
        (
            chained(httpx.ConnectError("x"), socket.gaierror(-2, "Name or service not known")),
            "cannot connect: the host name does not resolve",
        ),
        (
            chained(httpx.ConnectError("x"), ConnectionRefusedError(111, "refused")),
            "cannot connect: connection refused",
        ),
        (
            chained(httpx.ConnectError("x"), OSError(101, "Network is unreachable")),
            "cannot connect: network is unreachable",
        ),
        (httpx.ConnectError("All connection attempts failed"), "cannot connect (ConnectError)"),
        (ValueError("not a network problem"), None),
    ],
)
def test_network_problem_words(error: BaseException, words: str | None) -> None:
    assert network_problem(error) == words
