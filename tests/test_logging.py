from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest

from omni.logging import (
    RedactingFilter,
    bind,
    current_context,
    fields,
    log_context,
    redact_also,
    setup_logging,
)

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRET = "sk-live-abcdef123456"


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks
    logging.captureWarnings(False)


def json_lines(err: str) -> list[dict[str, Any]]:
    """Every stderr line parsed; fails on any line that is not one JSON object."""
    lines = [json.loads(line) for line in err.splitlines()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


def test_bot_token_in_httpx_style_url_is_masked() -> None:
    redact = RedactingFilter().redact
    line = f'HTTP Request: POST https://api.telegram.org/bot{TOKEN}/getUpdates "HTTP/1.1 200 OK"'
    assert TOKEN not in redact(line)
    assert "/bot***/getUpdates" in redact(line)


def test_configured_secrets_are_masked() -> None:
    redact = RedactingFilter(["sk-live-abcdef123456"]).redact
    assert redact("key=sk-live-abcdef123456 used") == "key=*** used"


def test_a_secret_made_at_run_time_is_masked_from_then_on(
    capsys: pytest.CaptureFixture[str], restore_root: None
) -> None:
    setup_logging("INFO", [SECRET])
    redact_also("generated-webhook-secret_42")  # what bot/webhook.py does with a generated one
    logging.getLogger("omni.test").warning("secret_token=%s", "generated-webhook-secret_42")
    err = capsys.readouterr().err
    assert "generated-webhook-secret" not in err and "secret_token=***" in err


def test_setup_logging_redacts_args_and_tracebacks(
    capsys: pytest.CaptureFixture[str], restore_root: None
) -> None:
    setup_logging("INFO", secrets=["sk-live-abcdef123456"])
    log = logging.getLogger("omni.test")
    log.info("calling %s with %s", f"https://x/bot{TOKEN}/getMe", "sk-live-abcdef123456")
    try:
        raise RuntimeError(f"failed with key sk-live-abcdef123456 at bot{TOKEN}")
    except RuntimeError:
        log.exception("boom")
    err = capsys.readouterr().err
    assert "calling https://x/bot***/getMe with ***" in err
    assert "RuntimeError: failed with key *** at bot***" in err
    assert TOKEN not in err and "sk-live" not in err


def test_logs_go_to_stderr_only(capsys: pytest.CaptureFixture[str], restore_root: None) -> None:
    setup_logging("DEBUG")
    logging.getLogger("omni.test").warning("hello")
    out, err = capsys.readouterr()
    assert out == "" and "hello" in err


def test_httpx_request_lines_are_quiet_at_info(restore_root: None) -> None:
    setup_logging("INFO")
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)


def test_json_lines_carry_time_level_logger_message_and_named_values(
    capsys: pytest.CaptureFixture[str], restore_root: None
) -> None:
    setup_logging("INFO", log_format="json")
    log = logging.getLogger("omni.test")
    with log_context(update_id=41, chat_id=-100, absent=None):
        log.info("LLM call", extra=fields(model="openai/x", duration_ms=12.5))
        log.info('line with\nnewline and "quotes"')
    log.warning("outside %d", 7)
    first, second, third = json_lines(capsys.readouterr().err)
    assert first == {
        "ts": first["ts"],
        "level": "INFO",
        "logger": "omni.test",
        "msg": "LLM call",
        "model": "openai/x",
        "duration_ms": 12.5,
        "update_id": 41,
        "chat_id": -100,
    }
    ts = datetime.fromisoformat(first["ts"])
    assert first["ts"].endswith("Z") and ts.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - ts).total_seconds()) < 60
    assert second["msg"] == 'line with\nnewline and "quotes"' and second["update_id"] == 41
    assert third == {"ts": third["ts"], "level": "WARNING", "logger": "omni.test", "msg": "outside 7"}


def test_json_exception_is_one_line_with_its_traceback(
    capsys: pytest.CaptureFixture[str], restore_root: None
) -> None:
    setup_logging("INFO", log_format="json")
    try:
        raise ValueError("bad input")
    except ValueError:
        logging.getLogger("omni.test").exception("failed")
    (line,) = json_lines(capsys.readouterr().err)
    assert line["msg"] == "failed" and line["level"] == "ERROR"
    assert line["exc"].startswith("Traceback (most recent call last):")
    assert line["exc"].endswith("ValueError: bad input")


def test_text_lines_end_with_key_value_pairs(capsys: pytest.CaptureFixture[str], restore_root: None) -> None:
    setup_logging("INFO")
    with log_context(update_id=41, chat_id=7):
        logging.getLogger("omni.test").info("tool call", extra=fields(tool="skills__x", note="two words"))
    line = capsys.readouterr().err.strip()
    assert line.endswith(' INFO omni.test: tool call tool=skills__x note="two words" update_id=41 chat_id=7')


def test_a_line_names_its_own_value_before_the_contexts(
    capsys: pytest.CaptureFixture[str], restore_root: None
) -> None:
    setup_logging("INFO", log_format="json")
    with log_context(chat_id=1):
        logging.getLogger("omni.test").info("x", extra=fields(chat_id=2, msg="not the message"))
    (line,) = json_lines(capsys.readouterr().err)
    assert line["chat_id"] == 2 and line["msg"] == "x"


@pytest.mark.anyio
async def test_context_reaches_tasks_created_under_it_and_nothing_else() -> None:
    async def seen_later(ready: asyncio.Event) -> dict[str, object]:
        await ready.wait()  # the block that bound it has ended by now
        return dict(current_context())

    async def binds_its_own() -> None:
        bind(request_id="r-2")
        await asyncio.sleep(0)
        assert current_context() == {"update_id": 1, "request_id": "r-2"}

    ready = asyncio.Event()
    with log_context(update_id=1):
        inherited = asyncio.create_task(seen_later(ready))
        await asyncio.create_task(binds_its_own())
        assert current_context() == {"update_id": 1}  # the task's bind stayed in the task
        with log_context(update_id=2, chat_id=5):
            assert current_context() == {"update_id": 2, "chat_id": 5}
        assert current_context() == {"update_id": 1}
    assert current_context() == {}
    outside = asyncio.create_task(seen_later(ready))
    ready.set()
    assert await inherited == {"update_id": 1}
    assert await outside == {}


def _emit_secrets(log: logging.Logger) -> None:
    """A token and a key in every place a record carries text."""
    log.info(f"token {TOKEN} in the message, key {SECRET}")
    log.info("args: %s and %s", TOKEN, SECRET)
    logging.getLogger("httpx").warning(f'HTTP Request: POST https://api.telegram.org/bot{TOKEN}/getMe "500"')
    log.info("named", extra=fields(url=f"https://x/bot{TOKEN}/sendMessage", key=SECRET))
    with log_context(request_id=f"req-{SECRET}"):
        try:
            raise RuntimeError(f"failed with key {SECRET} at https://x/bot{TOKEN}/getUpdates")
        except RuntimeError:
            log.exception("boom %s", SECRET)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_are_redacted_everywhere_in_both_formats(
    log_format: Literal["text", "json"], capsys: pytest.CaptureFixture[str], restore_root: None
) -> None:
    setup_logging("INFO", secrets=[SECRET], log_format=log_format)
    _emit_secrets(logging.getLogger("omni.test"))
    err = capsys.readouterr().err
    assert TOKEN not in err and TOKEN.split(":")[1] not in err and SECRET not in err
    assert "sk-live" not in err
    assert "/bot***/getMe" in err and "/bot***/getUpdates" in err and "bot***/sendMessage" in err
    assert "RuntimeError: failed with key *** at https://x/bot***/getUpdates" in (
        err if log_format == "text" else json_lines(err)[-1]["exc"]
    )
    if log_format == "json":
        lines = json_lines(err)
        assert [line["msg"] for line in lines] == [
            "token *** in the message, key ***",
            "args: *** and ***",
            'HTTP Request: POST https://api.telegram.org/bot***/getMe "500"',
            "named",
            "boom ***",
        ]
        assert lines[3]["key"] == "***" and lines[4]["request_id"] == "req-***"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_uncaught_exceptions_and_warnings_go_through_the_handler(
    log_format: Literal["text", "json"], capsys: pytest.CaptureFixture[str], restore_root: None
) -> None:
    setup_logging("INFO", secrets=[SECRET], log_format=log_format)
    try:
        raise RuntimeError(f"crashed holding {SECRET}")
    except RuntimeError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(f"deprecated, like {SECRET}", DeprecationWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert SECRET not in err and "RuntimeError: crashed holding ***" in err
    assert "DeprecationWarning: deprecated, like ***" in err
    if log_format == "json":
        crash, warning = json_lines(err)
        assert crash["level"] == "CRITICAL" and "crashed holding ***" in crash["exc"]
        assert warning["logger"] == "py.warnings" and warning["level"] == "WARNING"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_logs_go_to_stderr_only_in_both_formats(
    log_format: Literal["text", "json"], capsys: pytest.CaptureFixture[str], restore_root: None
) -> None:
    setup_logging("DEBUG", log_format=log_format)
    logging.getLogger("omni.test").warning("hello")
    out, err = capsys.readouterr()
    assert out == "" and "hello" in err


def _rpc(method: str, params: dict[str, Any], id: int | None = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if id is not None:
        message["id"] = id
    return (json.dumps(message) + "\n").encode()


def test_omni_mcp_in_json_format_keeps_stdout_for_the_protocol(omni_cmd: list[str], tmp_path: Path) -> None:
    """Over stdio, stdout carries only JSON-RPC; every stderr line is a JSON log line."""
    from mcp_types import LATEST_PROTOCOL_VERSION

    env = {**os.environ, "OMNI_LOG_FORMAT": "json", "OMNI_LOG_LEVEL": "DEBUG"}
    initialize = {
        "protocolVersion": LATEST_PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    }
    requests = (
        _rpc("initialize", initialize, id=1)
        + _rpc("notifications/initialized", {})
        + _rpc("tools/call", {"name": "current_time", "arguments": {"timezone": "UTC"}}, id=2)
    )
    log = tmp_path / "mcp.log"
    answers: list[dict[str, Any]] = []
    with (
        log.open("wb") as stderr,  # a file, not a pipe: a full pipe would stall the server
        subprocess.Popen(
            [*omni_cmd, "mcp"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
        ) as proc,
    ):
        assert proc.stdin is not None and proc.stdout is not None
        watchdog = threading.Timer(30, proc.kill)  # a hung server fails the test instead of the run
        watchdog.start()
        try:
            proc.stdin.write(requests)
            proc.stdin.flush()
            while len(answers) < 2:  # answers to 1 and 2; then EOF on stdin ends the server
                line = proc.stdout.readline()
                assert line, "omni mcp closed stdout before answering"
                answers.append(json.loads(line))
            proc.stdin.close()
            rest = proc.stdout.read()
            assert proc.wait(10) == 0
        finally:
            watchdog.cancel()
    err = log.read_text(encoding="utf-8")
    assert rest == b""
    assert [(a["jsonrpc"], a["id"]) for a in answers] == [("2.0", 1), ("2.0", 2)]
    logged = json_lines(err)
    assert any(line["msg"] == "skills server ready on stdio" for line in logged)
    assert all({"ts", "level", "logger", "msg"} <= line.keys() for line in logged)
    assert any(line["level"] == "DEBUG" for line in logged)  # the SDK's own lines are JSON too
    assert answers[1]["id"] == 2 and answers[1]["result"]["isError"] is False


def test_a_log_call_with_bad_arguments_is_logged_not_raised(
    capsys: pytest.CaptureFixture[str], restore_root: None
) -> None:
    setup_logging("INFO", secrets=[SECRET], log_format="json")
    logging.getLogger("omni.test").info("%d items", SECRET)  # would raise into the caller
    (line,) = json_lines(capsys.readouterr().err)
    assert line["msg"] == "unformattable log message '%d items' with arguments ('***',)"
