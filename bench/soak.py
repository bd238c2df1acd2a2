"""Soak: `omni bot` answers many messages from many users; does anything grow that should not?

The real `omni bot` runs as a subprocess (long polling, SQLite in a temp dir, the built-in
skills server as its child) against the in-repo fake Bot API and fake LLM served from this
process. ``--messages`` messages from ``--users`` users (round robin, so each user's messages
are in order) are pushed at ``--rate`` a second with at most ``--in-flight`` unanswered. The
fake LLM echoes each message; every ``--tool-every``-th message of a user gets a tool round
first (``skills__current_time``, through the skills server).

Measured from outside, at three idle points (every answer out): after start-up, after the
warm-up (the first ``--warm-up`` share of the messages) and at the end; the growth is end
against warm-up. RSS, open file descriptors (/proc/PID/fd; sockets apart, as most are pooled
keep-alive connections that come and go with the load) and threads of the bot and of its
child processes; the bot's asyncio tasks as its admin ``/status`` shows them. A sample every
second besides gives the peaks, and a last look after ``--settle`` idle seconds shows the
pools emptied. Reply latency, of the messages after the warm-up, runs from the update's
arrival at the fake to the reply's.

Then the bot gets SIGTERM (exit 0 expected) and the database is checked, exactly: every update
answered, one user and one assistant message per user message plus the tool rounds' two (the
assistant's call, the tool's result), two episodes per exchange; and every user got exactly
their answers, in order.

    python bench/soak.py [--messages 10000] [--users 100] [--rate 25] [--in-flight 32]
                         [--tool-every 10] [--settle 10] [--quick] [--json]

``--quick`` is 600 messages from 20 users. Exit code 1 when a count or an answer is wrong;
with ``--json`` the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.llm_api import FakeLLM  # noqa: E402
from tests.fakes.server import serve_in_thread  # noqa: E402
from tests.fakes.telegram_api import TOKEN, FakeTelegram, Sent  # noqa: E402

ADMIN = 1  # reads /status
FIRST_USER = 10_000
START_TIMEOUT_S = 120.0
REPLY_TIMEOUT_S = 120.0  # for the answers in flight to come in, at each idle point and the end
SAMPLE_EVERY_S = 1.0
TRIM_LLM_EVERY = 500  # the fake LLM keeps every request body: dropped now and then (our memory)
_TASKS = re.compile(r"^tasks: (\d+)$", re.MULTILINE)
TOOL_WORD = "what time is it"  # a message with these words gets a tool round (skills__current_time)
TOOL_CALL = {"name": "skills__current_time", "arguments": {"timezone": "UTC"}}


# -- the process, from /proc -------------------------------------------------------------------


def _status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {name} for {pid}")


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except OSError:  # exited while we looked
                continue
    found: list[int] = []
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found += sorted(frontier)
    return found


@dataclass
class Usage:
    """One process tree's use of memory, descriptors and threads at a moment."""

    rss_mb: float
    fds: int
    sockets: int  # of the fds: mostly pooled keep-alive connections, closed after seconds idle
    threads: int
    child_rss_mb: float
    child_fds: int
    children: int

    @classmethod
    def of(cls, pid: int) -> Usage:
        rss, fds, sockets, threads = cls._one(pid)
        child_rss = child_fds = children = 0
        for child in _descendants(pid):
            try:
                c_rss, c_fds, _, _ = cls._one(child)
            except (OSError, RuntimeError):  # gone meanwhile (a zombie has no VmRSS)
                continue
            child_rss, child_fds, children = child_rss + c_rss, child_fds + c_fds, children + 1
        return cls(rss / 1024, fds, sockets, threads, child_rss / 1024, child_fds, children)

    @property
    def other_fds(self) -> int:
        """Files, pipes, the event loop's epoll: what should not move at all once warm."""
        return self.fds - self.sockets

    @staticmethod
    def _one(pid: int) -> tuple[int, int, int, int]:
        rss = _status_field(pid, "VmRSS")
        fds = sockets = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                sockets += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
            except OSError:  # closed while we looked
                continue
            fds += 1
        return rss, fds, sockets, _status_field(pid, "Threads")


@dataclass
class Checkpoint:
    """An idle moment: everything sent so far answered."""

    answered: int
    usage: Usage
    tasks: int


class Sampler(threading.Thread):
    """Samples the bot's process tree every second, for the peaks."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.pid = pid
        self.samples: list[Usage] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(SAMPLE_EVERY_S):
            try:
                self.samples.append(Usage.of(self.pid))
            except (OSError, RuntimeError):
                return  # the bot is gone

    def stop(self) -> None:
        self._done.set()
        self.join()


# -- driving the bot ------------------------------------------------------------------------------


class Soak:
    def __init__(self, args: argparse.Namespace, tmp: Path, stack: ExitStack) -> None:
        self.args = args
        self.tg, self.llm = FakeTelegram(), FakeLLM()
        tg_url = stack.enter_context(serve_in_thread(self.tg.app))
        llm_url = stack.enter_context(serve_in_thread(self.llm.app))
        self.data = tmp / "data"
        self.log = tmp / "bot.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNI_")}
        env.update(
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            OMNI_TELEGRAM_TOKEN=TOKEN,
            OMNI_TELEGRAM_API_URL=tg_url,
            OMNI_LLM_MODEL="openai/fake-model",
            OMNI_LLM_API_BASE=llm_url + "/v1",
            OMNI_LLM_API_KEY="sk-soak",
            OMNI_ADMIN_IDS=str(ADMIN),
            OMNI_ALLOWED_IDS="*",
            OMNI_DATA_DIR=str(self.data),
            OMNI_LOG_LEVEL="WARNING",
        )
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.sent_to_users = 0  # messages pushed by users (not the admin's /status)
        self.statuses = 0
        self.pushed: dict[int, list[int]] = defaultdict(list)  # user -> their update ids, in order
        self.last_update_id = 0
        self._scanned = self._answers = 0  # of tg.sent
        self.measured_from = 0  # the first update id whose latency counts
        self.tool_asks = 0
        self.llm.tool_rule = (TOOL_WORD, TOOL_CALL)
        stack.callback(self._kill)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> float:
        """Start `omni bot`; seconds until its skills server runs (after its first getUpdates)."""
        started = time.perf_counter()
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "omni", "bot"],
                env=self.env,
                cwd=self.data.parent,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self._until(lambda: bool(self.tg.get_updates_times), "the first getUpdates")
        self._until(lambda: any(" mcp" in _cmdline(c) for c in _descendants(self.pid)), "the skills server")
        return time.perf_counter() - started

    def _until(self, condition: Callable[[], bool], what: str, within: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"omni bot exited ({self.proc.returncode}) waiting for {what}:\n{self._tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}:\n{self._tail()}")
            time.sleep(0.005)

    def _tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])

    def _answered(self) -> int:
        """Answers (and /status replies) sent so far; status lines of tool rounds don't count."""
        sent = self.tg.sent  # only appended to: read by index without the fake's lock
        while self._scanned < len(sent):
            self._answers += _is_answer(sent[self._scanned])
            self._scanned += 1
        return self._answers

    def _expected(self) -> int:
        return self.sent_to_users + self.statuses

    def checkpoint(self) -> Checkpoint:
        """Wait until every message was answered, then measure (the admin's /status last)."""
        self._until(lambda: self._answered() >= self._expected(), "the answers", REPLY_TIMEOUT_S)
        usage = Usage.of(self.pid)
        self.tg.push_text(ADMIN, "/status")
        self.statuses += 1
        self._until(lambda: self._answered() >= self._expected(), "/status", REPLY_TIMEOUT_S)
        found = _TASKS.search(self.tg.texts(ADMIN)[-1])
        if found is None:
            raise RuntimeError("/status shows no task count")
        return Checkpoint(self.sent_to_users, usage, int(found.group(1)))

    def feed(self, first: int, last: int) -> None:
        """Push messages ``first`` .. ``last - 1`` at the rate, never more than the bound in flight."""
        users, rate, bound = self.args.users, self.args.rate, self.args.in_flight
        t0 = time.perf_counter()
        for i in range(first, last):
            if rate:
                delay = t0 + (i - first) / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            while self._expected() - self._answered() >= bound:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"omni bot exited ({self.proc.returncode}):\n{self._tail()}")
                time.sleep(0.002)
            user, k = FIRST_USER + i % users, i // users
            text = _text(user, k, self.args.tool_every)
            self.tool_asks += TOOL_WORD in text
            update_id = self.tg.push_text(user, text)
            self.pushed[user].append(update_id)
            self.last_update_id = update_id
            self.sent_to_users += 1
            if self.sent_to_users % TRIM_LLM_EVERY == 0:
                self.llm.reset()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def latencies_ms(self) -> list[float]:
        """Per user, the k-th answer answers the k-th message (checked by ``wrong_answers``)."""
        by_chat: dict[int, list[float]] = defaultdict(list)
        for sent in self.tg.sent:
            if _is_answer(sent):
                by_chat[sent.chat_id].append(sent.at)
        out = []
        for user, update_ids in self.pushed.items():
            for update_id, at in zip(update_ids, by_chat[user], strict=False):
                if update_id >= self.measured_from:
                    out.append((at - self.tg.push_times[update_id]) * 1000)
        return out

    def wrong_answers(self) -> list[str]:
        """Users whose answers are not exactly theirs, in order: one line each."""
        wrong = []
        # What a user sees: messages sent and not deleted since (a tool round's status line).
        gone = {(int(p["chat_id"]), int(p["message_id"])) for m, p in self.tg.calls if m == "deleteMessage"}
        for user, update_ids in self.pushed.items():
            want = [f"echo: {_text(user, k, self.args.tool_every)}" for k in range(len(update_ids))]
            got = [
                s.text for s in self.tg.sent if s.chat_id == user and (s.chat_id, s.message_id) not in gone
            ]
            if got != want:
                first = next((k for k, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
                wrong.append(
                    f"user {user}: {len(got)} answers for {len(want)} messages, first wrong: {first}"
                )
        return wrong


def _is_answer(sent: Sent) -> bool:
    return sent.method == "sendMessage" and (sent.chat_id == ADMIN or sent.text.startswith("echo: "))


def _text(user: int, k: int, tool_every: int) -> str:
    """A user's ``k``-th message; every ``tool_every``-th asks for a tool."""
    ask = TOOL_WORD if tool_every and k % tool_every == tool_every - 1 else "please keep this short"
    return f"u{user} message {k}: {ask}"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# -- the database ------------------------------------------------------------------------------


def count_rows(db: Path) -> dict[str, int]:
    with closing(sqlite3.connect(db)) as conn:

        def one(sql: str) -> int:
            return int(conn.execute(sql).fetchone()[0])

        return {
            "updates": one("SELECT count(*) FROM updates"),
            "updates_answered": one("SELECT count(*) FROM updates WHERE status = 'answered'"),
            "user_messages": one("SELECT count(*) FROM messages WHERE role = 'user'"),
            "assistant_messages": one("SELECT count(*) FROM messages WHERE role = 'assistant'"),
            "tool_messages": one("SELECT count(*) FROM messages WHERE role = 'tool'"),
            "summaries": one("SELECT count(*) FROM messages WHERE role = 'system'"),
            "episodes": one("SELECT count(*) FROM episodes"),
            "users": one("SELECT count(*) FROM users"),
            "integrity_ok": int(conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"),
        }


def wrong_counts(rows: dict[str, int], messages: int, statuses: int, tool_asks: int) -> list[str]:
    """Each count that is not exactly what the messages sent make it; one line each."""
    want = {
        "updates": messages + statuses,
        "updates_answered": messages + statuses,
        "user_messages": messages,
        # A tool round adds the assistant's call and the tool's result before the answer.
        "assistant_messages": messages + tool_asks,
        "tool_messages": tool_asks,
        "episodes": 2 * messages,
        "integrity_ok": 1,
    }
    return [f"{name}: {rows[name]}, expected {value}" for name, value in want.items() if rows[name] != value]


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Result:
    messages: int
    users: int
    seconds: float
    throughput: float
    p50_ms: float
    p95_ms: float
    start_s: float
    settle_s: float
    start: Checkpoint
    warm: Checkpoint
    end: Checkpoint
    idle: Usage  # --settle seconds after the end
    peak_rss_mb: float
    peak_child_rss_mb: float
    peak_fds: int
    exit_code: int
    rows: dict[str, int]
    problems: list[str]

    @property
    def rss_growth(self) -> float:
        return self.end.usage.rss_mb / self.warm.usage.rss_mb - 1

    @property
    def child_rss_growth(self) -> float:
        return self.end.usage.child_rss_mb / self.warm.usage.child_rss_mb - 1


def run(args: argparse.Namespace) -> Result:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="omni-soak-")))
        soak = Soak(args, tmp, stack)
        start_s = soak.start()
        start = soak.checkpoint()
        sampler = Sampler(soak.pid)
        sampler.start()
        stack.callback(sampler.stop)
        warm_up = max(1, round(args.messages * args.warm_up))
        began = time.perf_counter()
        soak.feed(0, warm_up)
        warm = soak.checkpoint()
        soak.measured_from = soak.last_update_id + 1  # latency of the messages after the warm-up
        soak.feed(warm_up, args.messages)
        end = soak.checkpoint()
        seconds = time.perf_counter() - began
        sampler.stop()
        time.sleep(args.settle)  # idle: pooled connections expire
        idle = Usage.of(soak.pid)
        exit_code = soak.stop()
        rows = count_rows(soak.data / "omni.db")
        problems = soak.wrong_answers() + wrong_counts(rows, args.messages, soak.statuses, soak.tool_asks)
        if exit_code != 0:
            problems.append(f"omni bot exited with {exit_code} after SIGTERM")
        latencies = soak.latencies_ms()
        samples = sampler.samples or [end.usage]
        return Result(
            messages=args.messages,
            users=args.users,
            seconds=seconds,
            throughput=args.messages / seconds,
            p50_ms=statistics.median(latencies),
            p95_ms=statistics.quantiles(latencies, n=100)[94],
            start_s=start_s,
            settle_s=args.settle,
            start=start,
            warm=warm,
            end=end,
            idle=idle,
            peak_rss_mb=max(s.rss_mb for s in samples),
            peak_child_rss_mb=max(s.child_rss_mb for s in samples),
            peak_fds=max(s.fds for s in samples),
            exit_code=exit_code,
            rows=rows,
            problems=problems,
        )


def report(r: Result) -> str:
    points = (r.start, r.warm, r.end)

    def row(name: str, values: Sequence[float], fmt: str, growth: str = "") -> str:
        return f"{name:<22}" + "".join(f"{format(v, fmt):>12}" for v in values) + f"{growth:>12}"

    def counted(name: str, values: Sequence[int]) -> str:
        return row(name, values, "d", f"{values[2] - values[1]:+d}")

    return "\n".join(
        [
            f"soak: {r.messages} messages from {r.users} users in {r.seconds:.1f} s "
            f"({r.throughput:.1f} messages/s); reply p50 {r.p50_ms:.0f} ms, p95 {r.p95_ms:.0f} ms; "
            f"start-up {r.start_s:.1f} s",
            f"{'':<22}{'start':>12}{f'@{r.warm.answered}':>12}{'end':>12}{'end-warm':>12}",
            row("bot RSS (MB)", [p.usage.rss_mb for p in points], ".1f", f"{r.rss_growth:+.1%}"),
            row(
                "skills RSS (MB)", [p.usage.child_rss_mb for p in points], ".1f", f"{r.child_rss_growth:+.1%}"
            ),
            counted("bot fds, no sockets", [p.usage.other_fds for p in points]),
            counted("bot sockets", [p.usage.sockets for p in points]),
            counted("skills fds", [p.usage.child_fds for p in points]),
            counted("bot threads", [p.usage.threads for p in points]),
            counted("child processes", [p.usage.children for p in points]),
            counted("asyncio tasks (idle)", [p.tasks for p in points]),
            f"peaks (1 s samples): bot RSS {r.peak_rss_mb:.1f} MB, skills RSS {r.peak_child_rss_mb:.1f} MB, "
            f"bot fds {r.peak_fds}",
            f"after {r.settle_s:g} s idle: bot sockets {r.idle.sockets}, fds {r.idle.fds}, "
            f"RSS {r.idle.rss_mb:.1f} MB",
            "rows: "
            + ", ".join(f"{k} {v}" for k, v in r.rows.items() if k != "integrity_ok")
            + f"; integrity {'ok' if r.rows['integrity_ok'] else 'FAILED'}; SIGTERM -> exit {r.exit_code}",
            "answers and counts: "
            + ("exact" if not r.problems else "WRONG:\n  " + "\n  ".join(r.problems[:20])),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages in all (default 10000)")
    parser.add_argument("--users", type=int, default=100, help="users writing them (default 100)")
    parser.add_argument("--quick", action="store_true", help="600 messages from 20 users")
    parser.add_argument("--rate", type=float, default=25.0, help="messages a second; 0: no pacing (25)")
    parser.add_argument("--in-flight", type=int, default=32, help="unanswered messages at most (32)")
    parser.add_argument("--warm-up", type=float, default=0.1, help="share of messages before the baseline")
    parser.add_argument(
        "--tool-every",
        type=int,
        default=10,
        help="a user's every Nth message gets a tool round; 0: none (10)",
    )
    parser.add_argument("--settle", type=float, default=10.0, help="idle seconds before the last look (10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.users = 600, 20
    if args.messages < args.users or args.users < 1 or args.in_flight < 1:
        parser.error("need --users >= 1, --messages >= --users and --in-flight >= 1")
    result = run(args)
    print(report(result), flush=True)
    if args.json:
        out: dict[str, Any] = asdict(result)
        out.update(rss_growth=result.rss_growth, child_rss_growth=result.child_rss_growth)
        print(json.dumps(out))
    sys.exit(1 if result.problems else 0)


if __name__ == "__main__":
    main()
