"""One logging setup for every command: stderr only, with secrets redacted.

stdout belongs to ``omni chat`` replies and the ``omni mcp`` stdio protocol, so nothing logs
there. httpx logs whole request URLs at INFO, and Bot API URLs carry the bot token: the filter
masks configured secrets and anything shaped like a bot token, whatever logger emits it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

# A Telegram bot token is "<bot id>:<35 url-safe chars>"; match it anywhere, also after "/bot".
_TOKEN_PATTERN = re.compile(r"\d{6,}:[A-Za-z0-9_-]{30,}")
_MASK = "***"


class RedactingFilter(logging.Filter):
    """Replace known secrets and bot-token-shaped strings in the formatted message."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _MASK)
        return _TOKEN_PATTERN.sub(_MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        redacted = self.redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def setup_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Install one stderr handler on the root logger; call once, from the CLI."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Request lines name URLs (with the bot token) and add noise; warnings still come through.
    for noisy in ("httpx", "httpcore", "LiteLLM", "litellm", "watchfiles", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
