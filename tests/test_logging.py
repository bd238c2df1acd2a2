from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from omni.logging import RedactingFilter, setup_logging

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_bot_token_in_httpx_style_url_is_masked() -> None:
    redact = RedactingFilter().redact
    line = f'HTTP Request: POST https://api.telegram.org/bot{TOKEN}/getUpdates "HTTP/1.1 200 OK"'
    assert TOKEN not in redact(line)
    assert "/bot***/getUpdates" in redact(line)


def test_configured_secrets_are_masked() -> None:
    redact = RedactingFilter(["sk-live-abcdef123456"]).redact
    assert redact("key=sk-live-abcdef123456 used") == "key=*** used"


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
