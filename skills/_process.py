"""Run a child process for a tool: a clean environment, bounded output, bounded time, no leftovers.

Three rules, each for a failure seen in the wild:

- The child gets only the environment its caller builds (see :func:`minimal_env`), never the
  server's: the server holds the Telegram token and the LLM key.
- Output is read as it arrives and reading stops at ``cap`` bytes per stream; the process group
  is then killed. Buffering everything first (``communicate()``) lets ``yes`` fill the memory.
- The child leads its own process group (``start_new_session``) and that whole group is killed
  with SIGKILL when the call ends, whatever ended it: exit, cap, time limit, or cancellation of
  the calling task (the MCP server stops tools that overrun ``OMNI_TOOL_TIMEOUT``). Only a
  process that deliberately leaves the group (``setsid``) escapes; nothing is left by accident.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream

# After SIGKILL the kernel tears a process down promptly; this only bounds a pathological case.
_REAP_S = 5.0


@dataclass(frozen=True, slots=True)
class Completed:
    """What a command did; ``exit_code`` is negative when a signal ended it (-9: killed)."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False
    truncated: bool = False  # a stream passed the cap: reading stopped and the group was killed


def minimal_env(**extra: str) -> dict[str, str]:
    """PATH and a UTF-8 locale, plus ``extra``: nothing else of the server's environment.

    PATH is the one variable taken from the server's own process (not a setting): it is where
    this host keeps its programs, and a child cannot find ``git`` or ``ls`` without it.
    """
    return {"PATH": os.environ.get("PATH") or os.defpath, "LANG": "C.UTF-8", **extra}


def _kill_group(pid: int) -> None:
    # With start_new_session the child's pid is its process group id.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    seconds: float,
    cap: int,
) -> Completed:
    """Run ``argv`` for ``seconds`` at most, keeping ``cap`` bytes of each output stream."""
    process = await anyio.open_process(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
    )
    out, err = bytearray(), bytearray()
    over_cap = False

    async def drain(stream: ByteReceiveStream | None, buffer: bytearray) -> None:
        nonlocal over_cap
        if stream is None:
            return
        async for chunk in stream:
            room = cap - len(buffer)
            buffer += chunk[:room]
            if len(chunk) > room:
                over_cap = True
                _kill_group(process.pid)  # stop the producer now, not when its pipe fills
                return

    try:
        with anyio.move_on_after(seconds) as deadline:
            async with anyio.create_task_group() as readers:
                readers.start_soon(drain, process.stdout, out)
                readers.start_soon(drain, process.stderr, err)
                # anyio's wait() returns when the child exits, not when its pipes close.
                await process.wait()
                # The command is done; whatever it left running in the background would keep
                # the pipes open (and the readers waiting) until the time limit.
                _kill_group(process.pid)
    finally:
        _kill_group(process.pid)
        with anyio.CancelScope(shield=True), anyio.move_on_after(_REAP_S):
            await process.aclose()
    code = process.returncode
    return Completed(
        exit_code=code if code is not None else -signal.SIGKILL,
        stdout=bytes(out),
        stderr=bytes(err),
        timed_out=deadline.cancelled_caught,
        truncated=over_cap,
    )
