"""The rig of bench/faults.py: both fakes, `omni bot` as a subprocess, users' messages, and what
each message got back.

Every message a user sends must get exactly one reply: its answer (the fake LLM's ``echo:`` of
it) or one plain sentence saying what went wrong (the ``user_message`` of an omni error, or the
bot's "busy" notice). A reply is matched to its message by the text it echoes, by the message it
quotes, or else (an error reply, which names no message) to the oldest message of its chat still
without a reply: each chat is answered in order, so that is the one it is about. Status lines
(sent, then deleted when the answer comes) are not replies.
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.llm_api import FakeLLM  # noqa: E402
from tests.fakes.server import serve_in_thread  # noqa: E402
from tests.fakes.telegram_api import TOKEN, FakeTelegram, Sent  # noqa: E402

USERS = (3001, 3002, 3003, 3004, 3005, 3006)
START_TIMEOUT_S = 120.0  # litellm's import alone takes seconds on a busy machine
POLL_S = 0.05

Kind = Literal["answer", "error", "unexpected"]
_LOG_ERROR = re.compile(r"^\d{4}-\d\d-\d\d [\d:,.]+ ERROR ")


@dataclass(frozen=True, slots=True)
class Asked:
    """A message a user sent: pushed into the fake Bot API at ``at`` (perf_counter)."""

    update_id: int
    message_id: int
    chat_id: int
    text: str
    at: float


@dataclass(frozen=True, slots=True)
class Reply:
    kind: Kind
    text: str
    at: float


@dataclass(slots=True)
class Tally:
    """What the messages got: each should have exactly one reply."""

    sent: int = 0
    answered: int = 0  # exactly one reply, the answer
    errors: int = 0  # exactly one reply, a plain error
    duplicates: int = 0  # replies beyond the first, over all messages
    lost: int = 0  # no reply at all
    unexpected: int = 0  # replies that are neither an answer nor a plain error (a traceback...)
    unexpected_texts: list[str] = field(default_factory=list)


def plain_errors() -> frozenset[str]:
    """Every sentence omni may show a user when something fails: each omni error's
    ``user_message``, and the notice for a chat whose queue is full."""
    from bot.chat import BUSY_NOTICE
    from omni.errors import OmniError

    for module in ("agent.errors", "memory.errors"):  # for their subclasses of OmniError
        importlib.import_module(module)
    found = {BUSY_NOTICE}
    pending: list[type[OmniError]] = [OmniError]
    while pending:
        cls = pending.pop()
        found.add(cls.user_message)
        pending += cls.__subclasses__()
    return frozenset(found)


class Rig:
    """One run: the fakes, the bot process(es) and the messages, in ``workdir``."""

    def __init__(self, workdir: Path, *, data_dir: Path | None = None, skills: bool = False) -> None:
        self.workdir = workdir
        self.data_dir = data_dir or workdir / "data"
        self.tg, self.llm = FakeTelegram(), FakeLLM()
        self._stack = ExitStack()
        self._llm_stack = ExitStack()  # apart: the LLM's server is stopped and started again
        self.tg_url = self.llm_url = ""
        self.skills = skills
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.asked: list[Asked] = []
        self._plain = plain_errors()

    def __enter__(self) -> Rig:
        try:
            self.tg_url = self._stack.enter_context(serve_in_thread(self.tg.app))
            self.llm_url = self._llm_stack.enter_context(serve_in_thread(self.llm.app))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
        self._llm_stack.close()
        self._stack.close()

    # -- the LLM server itself: down means connections are refused ---------------------------

    def llm_stop(self) -> None:
        self._llm_stack.close()

    def llm_start(self) -> None:
        self._llm_stack = ExitStack()
        port = int(self.llm_url.rsplit(":", 1)[1])  # the same address: the bot knows no other
        self._llm_stack.enter_context(serve_in_thread(self.llm.app, port))

    # -- the bot process ------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNI_")}
        env.update(
            OMNI_TELEGRAM_TOKEN=TOKEN,
            OMNI_TELEGRAM_API_URL=self.tg_url,
            OMNI_LLM_MODEL="openai/fake-model",
            OMNI_LLM_API_BASE=self.llm_url + "/v1",
            OMNI_LLM_API_KEY="sk-bench",
            OMNI_ALLOWED_IDS=",".join(str(u) for u in USERS),
            OMNI_DATA_DIR=str(self.data_dir),
            OMNI_LOG_LEVEL="INFO",
            LITELLM_LOCAL_MODEL_COST_MAP="True",
        )
        if not self.skills:  # spawning the skills server costs seconds; most faults don't need it
            no_skills = self.workdir / "mcp.json"
            no_skills.write_text('{"mcpServers": {"skills": {"disabled": true}}}', encoding="utf-8")
            env["OMNI_MCP_CONFIG"] = str(no_skills)
        return env

    def log(self, n: int | None = None) -> str:
        """The stderr of the ``n``-th start (default: the last)."""
        path = self.workdir / f"bot{self.starts - 1 if n is None else n}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def error_lines(self) -> list[str]:
        """The bot's ERROR log lines over all its starts: an exception nothing handled."""
        lines = (self.log(n) for n in range(self.starts))
        return [line for text in lines for line in text.splitlines() if _LOG_ERROR.match(line)]

    def start(self) -> float:
        """Start `omni bot`; returns once it polls (its first getUpdates): the seconds it took."""
        started = time.perf_counter()
        log = (self.workdir / f"bot{self.starts}.log").open("wb")
        self.starts += 1
        cmd = [sys.executable, "-m", "omni", "bot"]
        self.proc = subprocess.Popen(
            cmd, env=self.env(), cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=log
        )
        log.close()  # the child keeps its own descriptor
        while not any(t > started for t in self.tg.get_updates_times):
            if self.proc.poll() is not None:
                raise RuntimeError(f"omni bot exited {self.proc.returncode}:\n{self.log()}")
            if time.perf_counter() - started > START_TIMEOUT_S:
                raise RuntimeError(f"omni bot did not poll within {START_TIMEOUT_S:.0f} s:\n{self.log()}")
            time.sleep(0.01)
        return time.perf_counter() - started

    def kill(self) -> None:
        """SIGKILL: no cleanup at all."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM; the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def children(self) -> list[int]:
        """The bot's child processes (the skills server it started over stdio)."""
        assert self.proc is not None
        pid = self.proc.pid
        try:
            return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    # -- users ----------------------------------------------------------------------------------

    def ask(self, user_id: int, text: str | None = None) -> Asked:
        """``user_id`` writes ``text`` (by default a numbered line of its own) in a private chat."""
        text = text or f"message {len(self.asked) + 1} from {user_id}"
        message = self.tg.message(user_id, text)
        update_id = self.tg.push_update({"message": message})
        asked = Asked(update_id, message["message_id"], user_id, text, time.perf_counter())
        self.asked.append(asked)
        return asked

    def load(
        self,
        seconds: float,
        per_second: float,
        users: Sequence[int],
        events: Sequence[tuple[float, Callable[[], None]]] = (),
    ) -> None:
        """Users take turns writing, ``per_second`` messages in all, for ``seconds``; each
        ``(at, action)`` of ``events`` runs ``at`` seconds in (after the messages, if later)."""
        start = time.monotonic()
        pending = sorted(events, key=lambda e: e[0])
        sent = 0
        while True:
            now = time.monotonic() - start
            while pending and pending[0][0] <= now:
                pending.pop(0)[1]()
            if now >= seconds and not pending:
                return
            if now < seconds and sent <= now * per_second:
                self.ask(users[sent % len(users)])
                sent += 1
                continue
            time.sleep(0.01)

    def warm_up(self, users: Sequence[int], within: float = 60.0) -> None:
        """One message per user, answered (litellm's import happens here)."""
        for user in users:
            self.ask(user, f"hello from {user}")
        if not self.settle(within, quiet=0):
            raise RuntimeError(f"the warm-up messages were not answered:\n{self.log()}")

    # -- what came back -------------------------------------------------------------------------

    def replies(self) -> dict[int, list[Reply]]:
        """Each asked message's replies (by update id)."""
        sent = list(self.tg.sent)
        deleted = {
            (int(p["chat_id"]), int(p["message_id"])) for m, p in list(self.tg.calls) if m == "deleteMessage"
        }
        by_text = {(a.chat_id, f"echo: {a.text}"): a for a in self.asked}
        by_message = {(a.chat_id, a.message_id): a for a in self.asked}
        chats: dict[int, list[Asked]] = defaultdict(list)
        for a in self.asked:
            chats[a.chat_id].append(a)
        out: dict[int, list[Reply]] = {a.update_id: [] for a in self.asked}
        for s in sorted(sent, key=lambda s: s.at):
            if s.method != "sendMessage" or (s.chat_id, s.message_id) in deleted:
                continue
            target = by_text.get((s.chat_id, s.text)) or by_message.get((s.chat_id, s.reply_to or 0))
            kind: Kind = "answer" if (s.chat_id, s.text) in by_text else self._kind(s)
            if target is None:
                waiting = [a for a in chats[s.chat_id] if not out[a.update_id] and a.at <= s.at]
                target = waiting[0] if waiting else None
            if target is None:  # a reply to nothing left unanswered: one too many
                older = [a for a in chats[s.chat_id] if a.at <= s.at]
                if not older:
                    continue  # not about any message of ours
                target = older[-1]
            out[target.update_id].append(Reply(kind, s.text, s.at))
        return out

    def _kind(self, s: Sent) -> Kind:
        return "error" if s.text in self._plain else "unexpected"

    def tally(self) -> Tally:
        tally = Tally(sent=len(self.asked))
        for replies in self.replies().values():
            if not replies:
                tally.lost += 1
                continue
            tally.duplicates += len(replies) - 1
            for r in replies:
                if r.kind == "unexpected":
                    tally.unexpected += 1
                    tally.unexpected_texts.append(r.text[:200])
            first = replies[0].kind
            tally.answered += first == "answer"
            tally.errors += first == "error"
        return tally

    def settle(self, within: float, quiet: float = 1.0) -> bool:
        """Wait until every message has a reply (False if some had none ``within`` s), then
        ``quiet`` s more, for any late second reply to show up."""
        deadline = time.monotonic() + within
        while any(not r for r in self.replies().values()):
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL_S)
        time.sleep(quiet)
        return True

    def first_answer_after(self, at: float, before: float = float("inf")) -> float | None:
        """Seconds from ``at`` (perf_counter) to the first answer sent after it (and ``before``)."""
        times = [
            r.at for rs in self.replies().values() for r in rs if r.kind == "answer" and at <= r.at < before
        ]
        return round(min(times) - at, 2) if times else None

    def llm_asks(self) -> dict[int, int]:
        """How many chat completions each asked message caused (its text as the last user message)."""
        counts: dict[str, int] = defaultdict(int)
        for body in list(self.llm.requests):
            users = [m for m in body.get("messages", []) if m.get("role") == "user"]
            if users and isinstance(users[-1].get("content"), str):
                counts[users[-1]["content"]] += 1
        return {a.update_id: counts.get(a.text, 0) for a in self.asked}


class CannotMount(Exception):
    """No small file system can be mounted here (not root, or no mount in this container)."""


@contextmanager
def small_disk(mount_point: Path, megabytes: int) -> Iterator[str]:
    """A file system of ``megabytes`` at ``mount_point`` for the block: tmpfs, else a
    loop-mounted ext4 image; yields which. Raises :class:`CannotMount` saying why."""
    mount_point.mkdir(parents=True, exist_ok=True)
    image = mount_point.parent / f"{mount_point.name}.img"
    try:
        kind = _mount(mount_point, megabytes, image)
    except CannotMount:
        image.unlink(missing_ok=True)
        raise
    try:
        yield kind
    finally:
        if _run("umount", str(mount_point)):  # busy: detach now, freed when the last user goes
            _run("umount", "-l", str(mount_point))
        image.unlink(missing_ok=True)


def _mount(mount_point: Path, megabytes: int, image: Path) -> str:
    tmpfs = _run("mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(mount_point))
    if not tmpfs:
        return "tmpfs"
    try:
        with image.open("wb") as f:
            f.truncate(megabytes << 20)
    except OSError as exc:
        raise CannotMount(f"tmpfs: {tmpfs}; ext4 image: {exc}") from exc
    loop = _run("mkfs.ext4", "-q", "-F", str(image))
    loop = loop or _run("mount", "-o", "loop", str(image), str(mount_point))
    if not loop:
        return "ext4 loop image"
    raise CannotMount(f"tmpfs: {tmpfs}; ext4 image: {loop}")


def _run(*cmd: str) -> str:
    """Run ``cmd``; why it failed, or "" when it worked."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:  # no such program here
        return str(exc)
    return "" if done.returncode == 0 else (done.stderr.strip() or f"{cmd[0]} exited {done.returncode}")


def fill(path: Path) -> int:
    """Write ``path`` until its file system is full; the bytes written."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 20, 65536, 4096, 512, 1):  # big blocks first, then what is left
            block = b"\0" * size
            while True:
                try:
                    n = os.write(fd, block)
                except OSError:
                    break
                written += n
                if n < size:
                    break
    finally:
        os.close(fd)
    return written
