"""Broken environments end the `omni` command with one line naming the problem, never a traceback.

Each test runs the real CLI in a subprocess (audit issue 12): a `.env` that is not UTF-8, a data
dir or workspace that cannot be written, a database driver that is not installed, a database
locked by another process, one stamped at head but missing tables, one newer than this code,
and credentials in URLs that `omni doctor` prints.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from memory.migrate import HEAD_REVISION, HEAD_TABLES, upgrade
from omni.settings import mask_url, mask_urls_in

# `omni chat` stops at the lock before it would call a model; nothing listens on port 9.
CHAT_ENV = {"OMNI_LLM_MODEL": "openai/fake-model", "OMNI_LLM_API_BASE": "http://127.0.0.1:9/v1"}


def run(
    cmd: list[str], *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*cmd, *args], input=stdin, capture_output=True, text=True, env=full_env, timeout=60
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (asserting there is exactly one)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The default database file, migrated to head."""
    path = tmp_path / "data" / "omni.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


# 1. A .env that is not UTF-8.


@pytest.mark.parametrize("sub", [["mcp"], ["db", "upgrade"], ["chat"]], ids=" ".join)
def test_env_file_that_is_not_utf8_is_one_line(omni_cmd: list[str], tmp_path: Path, sub: list[str]) -> None:
    (tmp_path / ".env").write_bytes(b"OMNI_LOG_LEVEL=INFO\nOMNI_LLM_API_KEY=s\xe9cret\n")
    result = run(omni_cmd, *sub, env=CHAT_ENV)
    assert result.returncode == 2
    assert one_line(result) == "omni: .env: is not valid UTF-8 (0xe9 on line 2); save it as UTF-8"


def test_doctor_reports_a_non_utf8_env_file_as_a_bad_setting(omni_cmd: list[str], tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"\xff\xfeO\x00M\x00")  # e.g. saved as UTF-16 by an editor
    result = run(omni_cmd, "doctor")
    assert result.returncode == 2
    assert result.stdout.strip() == "✗ settings: .env: is not valid UTF-8 (0xff on line 1); save it as UTF-8"
    assert "Traceback" not in result.stderr


# 2. A data dir or workspace that is not a writable folder.


@pytest.mark.parametrize("sub", [["mcp"], ["db", "upgrade"], ["chat"], ["bot"]], ids=" ".join)
def test_data_dir_that_is_a_file_is_one_line(omni_cmd: list[str], tmp_path: Path, sub: list[str]) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    result = run(omni_cmd, *sub, env={**CHAT_ENV, "OMNI_TELEGRAM_TOKEN": "123:abc"})
    assert result.returncode == 2
    assert one_line(result) == f"omni: OMNI_DATA_DIR: {blocker} is not a folder (a file has that name)"


def test_data_dir_under_a_file_names_the_file(omni_cmd: list[str], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run(omni_cmd, "mcp", env={"OMNI_DATA_DIR": str(blocker / "data")})
    assert result.returncode == 2
    assert one_line(result) == f"omni: OMNI_DATA_DIR: {blocker}/data is not a folder ({blocker} is a file)"


def test_doctor_reports_a_bad_data_dir_as_a_bad_setting(omni_cmd: list[str], tmp_path: Path) -> None:
    (tmp_path / "data").write_text("x")
    result = run(omni_cmd, "doctor")
    assert result.returncode == 2
    assert result.stdout.startswith("✗ settings: OMNI_DATA_DIR: ") and "is not a folder" in result.stdout
    assert "Traceback" not in result.stderr


def test_data_dir_that_cannot_be_written_is_one_line(omni_cmd: list[str]) -> None:
    # Tests may run as root, which ignores permission bits; /proc's folders refuse even root.
    if not Path("/proc/self").is_dir() or os.access("/proc/self", os.W_OK):
        pytest.skip("needs a folder this user cannot write to")
    result = run(omni_cmd, "mcp", env={"OMNI_DATA_DIR": "/proc/self"})
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith("omni: OMNI_DATA_DIR: /proc/") and line.endswith(" is not writable")


def test_data_dir_that_cannot_be_created_is_one_line(omni_cmd: list[str]) -> None:
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc")
    result = run(omni_cmd, "db", "upgrade", env={"OMNI_DATA_DIR": "/proc/omni-data"})
    assert result.returncode == 2
    assert one_line(result).startswith("omni: OMNI_DATA_DIR: /proc/omni-data cannot be created (")


def test_workspace_that_is_a_file_is_one_line(omni_cmd: list[str], tmp_path: Path) -> None:
    blocker = tmp_path / "ws"
    blocker.write_text("x")
    result = run(omni_cmd, "mcp", env={"OMNI_WORKSPACE": str(blocker)})
    assert result.returncode == 2
    assert one_line(result) == f"omni: OMNI_WORKSPACE: {blocker} is not a folder (a file has that name)"


# 3. A PostgreSQL URL without the asyncpg driver.


@pytest.fixture
def without_asyncpg(tmp_path: Path) -> dict[str, str]:
    """Environment for a subprocess in which `import asyncpg` fails, installed or not."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'asyncpg' or name.startswith('asyncpg.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "OMNI_DATABASE_URL": "postgresql+asyncpg://omni:pg-s3cret@127.0.0.1:1/omni"}


DRIVER_MISSING = "OMNI_DATABASE_URL: the postgresql+asyncpg driver asyncpg is not installed"


@pytest.mark.parametrize("sub", [["db", "upgrade"], ["chat"]], ids=" ".join)
def test_missing_database_driver_is_one_line(
    omni_cmd: list[str], without_asyncpg: dict[str, str], sub: list[str]
) -> None:
    result = run(omni_cmd, *sub, env={**without_asyncpg, **CHAT_ENV})
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith(f"omni: {DRIVER_MISSING}") and "pip install asyncpg" in line
    assert "pg-s3cret" not in result.stderr


def test_doctor_reports_a_missing_driver(omni_cmd: list[str], without_asyncpg: dict[str, str]) -> None:
    result = run(omni_cmd, "doctor", env=without_asyncpg)
    assert result.returncode == 1
    assert f"✗ database: {DRIVER_MISSING}" in result.stdout
    assert "pg-s3cret" not in result.stdout + result.stderr and "Traceback" not in result.stderr


# 4. A database locked by another process for longer than the busy timeout.


def test_chat_on_a_locked_database_ends_with_one_line(omni_cmd: list[str], db: Path) -> None:
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # what a sqlite3 shell left mid-transaction does
        started = time.monotonic()
        result = run(omni_cmd, "chat", env=CHAT_ENV, stdin="hello\nagain\n")
        elapsed = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 1
    assert result.stdout == ""
    assert one_line(result).startswith(f"omni: the database {db} is locked by another process (waited 5 s)")
    assert elapsed < 15  # one busy timeout, not one per line


# 5. A database stamped at head whose tables are gone.


def test_database_missing_tables_is_one_line(omni_cmd: list[str], db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE messages")
    expected = (
        f"the database {db} is stamped at revision {HEAD_REVISION} but has no table messages: "
        "its schema is damaged"
    )
    for sub in (["chat"], ["db", "upgrade"]):
        result = run(omni_cmd, *sub, env=CHAT_ENV, stdin="hello\n")
        assert result.returncode == 1, sub
        assert one_line(result).startswith(f"omni: {expected}"), sub
    doctor = run(omni_cmd, "doctor")
    assert f"✗ database: {expected}" in doctor.stdout and doctor.returncode == 1


def test_head_tables_match_the_models() -> None:
    from memory.models import Base

    assert set(Base.metadata.tables) == HEAD_TABLES


# 6. Credentials in URLs that doctor prints (tests/test_doctor.py runs doctor itself).


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:key@host:8000/v1", "http://user:***@host:8000/v1"),
        ("https://sk-lone-user@host/v1", "https://***@host/v1"),
        ("https://host/v1?api_key=abc&model=x", "https://host/v1?api_key=***&model=x"),
        ("https://api.telegram.org", "https://api.telegram.org"),
        ("postgresql+asyncpg://u:pw@h/db", "postgresql+asyncpg://u:***@h/db"),
        ("sqlite+aiosqlite:////data/omni.db", "sqlite+aiosqlite:////data/omni.db"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_mask_urls_in_text() -> None:
    text = "cannot reach 'https://u:k@h/mcp' (ConnectError); see http://h/ok"
    assert mask_urls_in(text) == "cannot reach 'https://u:***@h/mcp' (ConnectError); see http://h/ok"


# 7. A database newer than this omni.


def test_database_newer_than_the_code_says_upgrade_omni(omni_cmd: list[str], db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_a_later_omni'")
    expected = (
        f"the database {db} is at revision 9999_from_a_later_omni, newer than this omni "
        f"(head {HEAD_REVISION}): upgrade omni"
    )
    doctor = run(omni_cmd, "doctor")
    assert doctor.returncode == 1
    assert f"✗ database: {expected}" in doctor.stdout and "omni db upgrade" not in doctor.stdout
    for sub in (["chat"], ["db", "upgrade"]):
        result = run(omni_cmd, *sub, env=CHAT_ENV, stdin="hello\n")
        assert result.returncode == 1, sub
        assert one_line(result) == f"omni: {expected}", sub
