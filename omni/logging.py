"""One logging setup for every command: stderr only, text or JSON lines, secrets redacted.

stdout belongs to ``omni chat`` replies and the ``omni mcp`` stdio protocol, so nothing logs
there. httpx logs whole request URLs at INFO, and Bot API URLs carry the bot token: the filter
masks configured secrets and anything shaped like a bot token, whatever logger emits it, in the
message, its arguments, tracebacks and every named value a line carries.

A line carries two kinds of named values, rendered as ``key=value`` after the message (text) or
as keys of the JSON object (``OMNI_LOG_FORMAT=json``):

- the context of the work in progress, bound once where that work starts and seen by every line
  logged under it, tasks created meanwhile included (contextvars are copied into new tasks)::

      with log_context(update_id=update.update_id, chat_id=chat.id):  # or request_id=...
          await handle(update)

  ``bind(...)`` adds to the context of the current task until it ends (for a worker task that
  moves on to its next job);
- values of one event, passed with the call: ``log.info("LLM call", extra=fields(model=m, ...))``.

Binding costs one small dict; nothing is formatted unless a line is emitted.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omni.settings import LogFormat

# A Telegram bot token is "<bot id>:<35 url-safe chars>"; match it anywhere, also after "/bot".
_TOKEN_PATTERN = re.compile(r"\d{6,}:[A-Za-z0-9_-]{30,}")
_MASK = "***"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_EMPTY: Mapping[str, object] = MappingProxyType({})
_context: ContextVar[Mapping[str, object]] = ContextVar("omni_log_context", default=_EMPTY)
# LogRecord attributes this module adds: the event's own values, and the context when logged.
_FIELDS = "omni_fields"
_CONTEXT = "omni_context"
# Values kept as they are; anything else is logged as its str(), redacted.
_PLAIN = (int, float, bool, type(None))
_NEEDS_QUOTES = re.compile(r'[\s"=]')


def _merged(values: Mapping[str, object]) -> Mapping[str, object]:
    current = _context.get()
    return MappingProxyType({**current, **{k: v for k, v in values.items() if v is not None}})


@contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Add ``values`` (``None`` ones are skipped) to every line logged inside the block."""
    token = _context.set(_merged(values))
    try:
        yield
    finally:
        _context.reset(token)


def bind(**values: object) -> None:
    """Add ``values`` to the context of the current task (and tasks it creates from now on)."""
    _context.set(_merged(values))


def current_context() -> Mapping[str, object]:
    """The context lines logged here would carry."""
    return _context.get()


def fields(**values: object) -> dict[str, object]:
    """``extra=`` for one log call: named values of this event, e.g. its duration."""
    return {_FIELDS: values}


def _named_values(record: logging.LogRecord) -> Iterator[tuple[str, object]]:
    """The event's values, then the context's, each key once (the event's win)."""
    own: Mapping[str, object] = getattr(record, _FIELDS, _EMPTY)
    yield from own.items()
    for key, value in getattr(record, _CONTEXT, _EMPTY).items():
        if key not in own:
            yield key, value


class ContextFilter(logging.Filter):
    """Attach the current log context to each record emitted (read in the emitting task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        if context:
            setattr(record, _CONTEXT, context)
        return True


class RedactingFilter(logging.Filter):
    """Replace known secrets and bot-token-shaped strings everywhere a record carries text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def add(self, secret: str) -> None:
        """Mask ``secret`` too, from now on."""
        if len(secret) >= 4:
            self._secrets = sorted({*self._secrets, secret}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _MASK)
        return _TOKEN_PATTERN.sub(_MASK, text)

    def _redact_values(self, values: Mapping[str, object]) -> Mapping[str, object]:
        if all(isinstance(v, _PLAIN) for v in values.values()):
            return values  # ids and durations: the usual case, nothing to copy
        return {k: v if isinstance(v, _PLAIN) else self.redact(str(v)) for k, v in values.items()}

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a call whose arguments do not fit its format string
            message = f"unformattable log message {record.msg!r} with arguments {record.args!r}"
            record.msg = None  # replaced below, with the arguments
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        redacted = self.redact(message)
        if redacted != record.msg or record.args:
            record.msg, record.args = redacted, None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for attr in (_FIELDS, _CONTEXT):
            values = getattr(record, attr, None)
            if values:
                setattr(record, attr, self._redact_values(values))
        return True


def _text_value(value: object) -> str:
    if not isinstance(value, str):
        return str(value)
    if not value or _NEEDS_QUOTES.search(value):
        return json.dumps(value)  # quoted, so the pairs stay parseable
    return value


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger>: <message> key=value ...``, then any traceback."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        pairs = " ".join(f"{k}={_text_value(v)}" for k, v in _named_values(record))
        return f"{line} {pairs}" if pairs else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the named values, exc when raised."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, object] = {
            "ts": f"{seconds}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _named_values(record):
            line.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # ASCII only: a line stays valid JSON even on a stderr that cannot encode the text.
        return json.dumps(line, default=str)


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None, where: str
) -> None:
    logging.getLogger("omni").critical("uncaught exception in %s", where, exc_info=(exc_type, exc, tb))


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    _log_uncaught(exc_type, exc, tb, "the main thread")


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):  # as threading's own hook
        return
    name = args.thread.name if args.thread is not None else "a thread"
    _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback, f"thread {name}")


def setup_logging(level: str = "INFO", secrets: Iterable[str] = (), log_format: LogFormat = "text") -> None:
    """Install one stderr handler on the root logger; call once, from the CLI."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter(secrets))  # after ContextFilter: it redacts the context too
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Request lines name URLs (with the bot token) and add noise; warnings still come through.
    for noisy in ("httpx", "httpcore", "LiteLLM", "litellm", "watchfiles", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # What Python would print to stderr itself goes through the handler too: one format, redacted.
    logging.captureWarnings(True)
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook


def redact_also(secret: str) -> None:
    """Mask ``secret`` in every line logged from now on: for a secret made at run time (the
    generated webhook secret), which ``setup_logging`` could not be given."""
    for handler in logging.getLogger().handlers:
        for found in handler.filters:
            if isinstance(found, RedactingFilter):
                found.add(secret)
