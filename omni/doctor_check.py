"""One line of ``omni doctor``, and the words for a failed network call, shared by the checks."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from enum import Enum

PROBE_TIMEOUT_S = 5.0  # the most a network probe (LLM, Telegram) may take


class Outcome(Enum):
    OK = "✓"
    FAILED = "✗"
    SKIPPED = "–"  # not configured, and not needed by every setup


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    outcome: Outcome
    detail: str

    @classmethod
    def ok(cls, name: str, detail: str) -> Check:
        return cls(name, Outcome.OK, detail)

    @classmethod
    def failed(cls, name: str, detail: str) -> Check:
        return cls(name, Outcome.FAILED, detail)

    @classmethod
    def skipped(cls, name: str, detail: str) -> Check:
        return cls(name, Outcome.SKIPPED, detail)

    def line(self) -> str:
        return f"{self.outcome.value} {self.name}: {self.detail}"


def since(started: float) -> str:
    """Milliseconds since ``started`` (a ``time.perf_counter()``), e.g. ``42 ms``."""
    return f"{(time.perf_counter() - started) * 1000:.0f} ms"


def causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from, outermost first (libraries wrap network errors)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def network_problem(exc: BaseException) -> str | None:
    """Plain words for a timeout or a connection that failed, else None.

    Built from exception classes and errno, never from their text: a library's message may
    quote the URL, and a Bot API URL carries the token.
    """
    chain = causes(exc)
    names = {cls.__name__ for e in chain for cls in type(e).__mro__}
    if names & {"TimeoutError", "TimeoutException", "APITimeoutError", "Timeout"}:
        return f"no answer within {PROBE_TIMEOUT_S:g} s"
    os_error = next((e for e in reversed(chain) if isinstance(e, OSError)), None)
    if isinstance(os_error, socket.gaierror):
        return "cannot connect: the host name does not resolve"
    if isinstance(os_error, ConnectionRefusedError):
        return "cannot connect: connection refused"
    if os_error is not None and os_error.strerror:
        return f"cannot connect: {os_error.strerror.lower()}"
    if names & {"ConnectError", "APIConnectionError", "TransportError", "ConnectionError"}:
        return f"cannot connect ({type(chain[-1]).__name__})"
    return None
