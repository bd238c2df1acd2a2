"""``omni chat``: the agent in a terminal, or behind a pipe.

One user message per stdin line, its reply on stdout (flushed at once). Replies may span
lines; nothing else is written to stdout, so ``printf 'a\\nb\\n' | omni chat`` prints exactly
two replies. When the model fails, the friendly error takes the reply's place on stdout (a
pipe user sees why there is no answer) and the chat goes on with the next line; details go
to the log on stderr. A database locked by another process ends the chat (exit 1, the reason
on stderr): every later line would wait and fail the same way. Empty lines are skipped;
``/new`` (or ``/reset``) starts a fresh conversation and ``/exit`` ends the chat; at end of
input the command exits 0.

Tool activity goes to stderr; with a TTY on stdin, so does a ``you>`` prompt.

SIGINT (Ctrl-C) and SIGTERM end the chat like end of input, with exit code 0, whether it is
waiting for a line or a reply is being worked on: that reply is cancelled (its question stays
in the session, as after ``/stop`` in Telegram, and the next ``omni chat`` carries on from
there), then the tool servers and the database are closed. Signals after the first are ignored
while that bounded clean-up runs.

stdin is read by a daemon thread that hands lines to the loop: this works the same for a
TTY, a pipe and a regular file (which ``loop.connect_read_pipe`` cannot watch), and the loop
never blocks on input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

from agent.factory import open_agent
from agent.loop import Agent
from agent.types import Progress, Turn
from memory.errors import StoreLocked
from memory.store import open_store
from omni.errors import OmniError
from omni.settings import Settings

log = logging.getLogger(__name__)

PROMPT = "you> "
NEW_COMMANDS = frozenset({"/new", "/reset"})
EXIT_COMMANDS = frozenset({"/exit", "/quit"})


def _start_reader(stream: TextIO, loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Lines of ``stream`` arrive on the returned queue; None marks the end of input."""
    # Unbounded, but the reader can only be ahead of the user by what they typed or piped in.
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        try:
            for line in stream:
                loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\r\n"))
        except (OSError, ValueError):  # stdin closed under us: same as end of input
            pass
        finally:
            try:
                loop.call_soon_threadsafe(lines.put_nowait, None)
            except RuntimeError:  # the loop is gone: the chat ended first
                pass

    threading.Thread(target=read, name="stdin-reader", daemon=True).start()
    return lines


def _say(text: str, stream: TextIO) -> None:
    stream.write(text + "\n")
    stream.flush()


async def _show_progress(event: Progress) -> None:
    if event.kind != "thinking":
        _say(f"  … {event.text}", sys.stderr)


async def _answer(agent: Agent, session_key: str, text: str) -> str:
    # The person at the terminal owns this machine: admin tools, the whole workspace.
    turn = Turn(session_key=session_key, text=text, is_admin=True)
    try:
        reply = await agent.reply(turn, _show_progress)
    except StoreLocked:
        raise  # every next line would wait and fail the same way: end with the reason instead
    except OmniError as exc:
        log.warning("no reply: %s", exc)
        return exc.user_message
    return reply.text


async def run_chat(settings: Settings, session: str) -> int:
    """Chat on stdin/stdout in session ``cli:<session>`` until end of input, ``/exit``, SIGINT or
    SIGTERM; returns 0."""
    with _cancelled_by_signals() as signalled:
        try:
            await _chat(settings, f"cli:{session}")
        except asyncio.CancelledError:
            if not signalled.is_set():
                raise
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()  # the cancellation was ours, and it is over
    return 0


@contextlib.contextmanager
def _cancelled_by_signals() -> Iterator[threading.Event]:
    """For the block: the first SIGINT/SIGTERM cancels the current task (the chat); the returned
    event tells that cancellation from any other."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    signalled = threading.Event()

    def on_signal(sig: signal.Signals) -> None:
        if signalled.is_set():
            return  # already stopping: let the clean-up finish
        signalled.set()
        log.info("received %s, stopping", sig.name)
        if sys.stdin.isatty():
            _say("", sys.stderr)  # end the prompt's line
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield signalled
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _chat(settings: Settings, session_key: str) -> None:
    interactive = sys.stdin.isatty()
    async with open_store(settings.database_url) as store, open_agent(settings, store) as agent:
        agent.warm_up()
        lines = _start_reader(sys.stdin, asyncio.get_running_loop())
        while True:
            if interactive:
                sys.stderr.write(PROMPT)
                sys.stderr.flush()
            line = await lines.get()
            if line is None:
                if interactive:
                    _say("", sys.stderr)
                return
            text = line.strip()
            if not text:
                continue
            if text in EXIT_COMMANDS:
                return
            if text in NEW_COMMANDS:
                await agent.new_session(session_key)
                _say("(started a new conversation)", sys.stderr)
                continue
            _say(await _answer(agent, session_key, text), sys.stdout)
