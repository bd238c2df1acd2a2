"""Latency, concurrency, start-up and memory of `omni bot`, against a bare PTB + litellm floor.

Both bots run as subprocesses, each against its own in-repo fakes (fake Bot API, fake LLM)
served from this process, and go through the same script, taking turns phase by phase (a
shared machine's speed drifts by tens of percent over minutes; this way both see the drift):

1. start: process start -> first getUpdates call, each bot alone (omni's database is migrated
   beforehand, as on any restart; a first start also creates the schema);
2. warm-up (10 messages, not measured: litellm's import happens here);
3. per-message overhead with a 0 ms LLM: N sequential messages (10 users in turn; 20 to one
   bot, then 20 to the other), each timed from "update available" (pushed into the fake) to
   "reply received" (sendMessage at the fake), and the bot process's CPU time per message;
4. 50 users writing at once with a 1 s LLM: wall time until all 50 replies, three rounds in
   turns, the median;
5. one user, many messages in a row (the personal-assistant case: one history that grows, and
   memory recalled on every turn): ``--one-user`` messages from one user, in blocks of 20
   taking turns with the floor;
6. a long memory (omni only): a user seeded with ``--episodes`` episodes before the start and
   a user with none take turns (blocks of 20 each); the difference of their p50s is what a
   long memory adds to a message;
7. memory: RSS after 100 messages and after 1,000 (the rest sent 25 users at a time).

    python bench/bot_latency.py [--messages 200] [--one-user 300] [--episodes 10000]
                                [--users 50] [--total 1000] [--json]

With ``--json`` the last line is one JSON object with both bots' figures and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from tests.fakes.llm_api import FakeLLM  # noqa: E402
from tests.fakes.server import serve_in_thread  # noqa: E402
from tests.fakes.telegram_api import TOKEN, FakeTelegram  # noqa: E402

WARM_UP = 10
SEQUENTIAL_USERS = 10
TURN = 20  # sequential messages a bot gets before the other bot's turn
USERS_ROUNDS = 3  # the 50-users test, taken in turns; the median is reported
FILL_BATCH = 25
REPLY_TIMEOUT_S = 120.0
ONE_USER = 42
LONG_MEMORY_USER, NO_MEMORY_USER = 43, 44


@dataclass
class Figures:
    start_to_first_poll_s: float
    p50_ms: float
    p95_ms: float
    users_wall_s: float
    rss_100_mb: float
    rss_1000_mb: float
    children_rss_mb: float
    cpu_ms_per_message: float
    one_user_p50_ms: float
    one_user_p95_ms: float

    @property
    def growth(self) -> float:
        return self.rss_1000_mb / self.rss_100_mb - 1


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process used so far (its children excluded)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_rss_mb(pid: int) -> float:
    """RSS of the bot's child processes (omni's skills MCP server), reported on its own."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sum(_rss_mb(int(child)) + _children_rss_mb(int(child)) for child in children)


class Bot:
    """One bot process with its own fakes; ``one``/``many`` drive it, the rest samples it."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.tg, self.llm = FakeTelegram(), FakeLLM()
        self._stack = ExitStack()
        tg_url = self._stack.enter_context(serve_in_thread(self.tg.app))
        llm_url = self._stack.enter_context(serve_in_thread(self.llm.app)) + "/v1"
        self.cmd = [part.format(tg=tg_url, llm=llm_url) for part in cmd]
        self.env = {k: v.format(tg=tg_url, llm=llm_url) for k, v in env.items()}
        self.cwd = cwd
        self.handled = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start the process; seconds until its first getUpdates call."""
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.cmd, env=self.env, cwd=self.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        while not self.tg.get_updates_times:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"{self.name} exited: {err}")
            time.sleep(0.002)
        return self.tg.get_updates_times[0] - started

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def one(self, user_id: int, text: str) -> float:
        """Send one message and wait for its reply; the latency in ms."""
        update_id = self.tg.push_text(user_id, text)
        self.handled += 1
        sent = self.tg.wait_for_messages(self.handled, timeout=REPLY_TIMEOUT_S)
        return (sent[self.handled - 1].at - self.tg.push_times[update_id]) * 1000

    def many(self, user_ids: list[int], text: str) -> float:
        """All users write at once; seconds until every reply arrived."""
        start = time.perf_counter()
        for user_id in user_ids:
            self.tg.push_text(user_id, f"{text} from {user_id}")
        self.handled += len(user_ids)
        sent = self.tg.wait_for_messages(self.handled, timeout=REPLY_TIMEOUT_S)
        return max(s.at for s in sent[-len(user_ids) :]) - start

    def close(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._stack.close()


@dataclass
class _Tally:
    start_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    users: list[float] = field(default_factory=list)
    rss_100: float = 0.0
    one_user: list[float] = field(default_factory=list)


def _measure(bots: list[Bot], args: argparse.Namespace) -> dict[str, Figures]:
    """The script, each phase taking turns between the bots, so a machine that speeds up or
    slows down meanwhile (shared hosts do) weighs on both alike."""
    tally = {bot.name: _Tally() for bot in bots}
    for bot in bots:  # one at a time: start-up is timed alone
        tally[bot.name].start_s = bot.start()
        for i in range(WARM_UP):
            bot.one(100 + i % SEQUENTIAL_USERS, f"warm-up {i}")
    for first in range(0, args.messages, TURN):
        for bot in bots:
            t = tally[bot.name]
            cpu_before = _cpu_s(bot.pid)
            for i in range(first, min(first + TURN, args.messages)):
                t.latencies.append(bot.one(100 + i % SEQUENTIAL_USERS, f"message {i}"))
                if bot.handled == 100:
                    t.rss_100 = _rss_mb(bot.pid)
            t.cpu_s += _cpu_s(bot.pid) - cpu_before
    for first in range(0, args.one_user, TURN):
        for bot in bots:
            for i in range(first, min(first + TURN, args.one_user)):
                tally[bot.name].one_user.append(bot.one(ONE_USER, f"note {i}: the plan for today"))
    for rnd in range(USERS_ROUNDS):
        for bot in bots:
            bot.llm.default_delay = args.llm_delay
            first_user = 5000 + rnd * args.users
            tally[bot.name].users.append(bot.many(list(range(first_user, first_user + args.users)), "all"))
            bot.llm.default_delay = 0.0
    figures = {}
    for bot in bots:
        next_user = 10_000
        while bot.handled < args.total:
            batch = min(FILL_BATCH, args.total - bot.handled)
            bot.many(list(range(next_user, next_user + batch)), "filler")
            next_user += batch
        t = tally[bot.name]
        q = statistics.quantiles(t.latencies, n=100)
        q1 = statistics.quantiles(t.one_user, n=100)
        figures[bot.name] = Figures(
            start_to_first_poll_s=t.start_s,
            p50_ms=statistics.median(t.latencies),
            p95_ms=q[94],
            users_wall_s=statistics.median(t.users),
            rss_100_mb=t.rss_100 or _rss_mb(bot.pid),
            rss_1000_mb=_rss_mb(bot.pid),
            children_rss_mb=_children_rss_mb(bot.pid),
            cpu_ms_per_message=t.cpu_s * 1000 / args.messages,
            one_user_p50_ms=statistics.median(t.one_user),
            one_user_p95_ms=q1[94],
        )
    return figures


def _long_memory(omni: Bot, args: argparse.Namespace) -> dict[str, float]:
    """p50 of a user with ``--episodes`` episodes and of one with none, taking turns."""
    times: dict[int, list[float]] = {LONG_MEMORY_USER: [], NO_MEMORY_USER: []}
    for first in range(0, args.messages, TURN):
        for user in times:
            for i in range(first, min(first + TURN, args.messages)):
                times[user].append(omni.one(user, f"what did I say about the garden plan {i}?"))
    with_memory = statistics.median(times[LONG_MEMORY_USER])
    without = statistics.median(times[NO_MEMORY_USER])
    return {"episodes": args.episodes, "p50_ms": with_memory, "p50_none_ms": without,
            "added_p50_ms": with_memory - without}  # fmt: skip


def _seed_episodes(url: str, owner: str, count: int) -> None:
    """``count`` past turns of ``owner``: sentences over a Zipf-like vocabulary, so the
    full-text index has long posting lists for common words and short ones for rare words."""
    import asyncio
    import random
    from datetime import UTC, datetime, timedelta

    from memory import open_store
    from memory.types import NewEpisode

    rng = random.Random(7)
    words = [f"w{i}" for i in range(3000)] + ["garden", "plan", "said", "today", "note"] * 40
    weights = [1 / (rank + 1) for rank in range(len(words))]
    start = datetime(2025, 1, 1, tzinfo=UTC)

    async def seed() -> None:
        async with open_store(url) as store:
            for first in range(0, count, 1000):
                batch = [
                    NewEpisode(
                        text=" ".join(rng.choices(words, weights, k=rng.randint(6, 30))),
                        speaker="user" if i % 2 == 0 else "assistant",
                        created_at=start + timedelta(minutes=17 * i),
                    )
                    for i in range(first, min(first + 1000, count))
                ]
                await store.episodes.add_many(owner, batch)

    asyncio.run(seed())


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNI_")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env.update(
        OMNI_TELEGRAM_TOKEN=TOKEN,
        OMNI_TELEGRAM_API_URL="{tg}",
        OMNI_LLM_MODEL="openai/fake-model",
        OMNI_LLM_API_BASE="{llm}",
        OMNI_LLM_API_KEY="sk-bench",
        OMNI_ALLOWED_IDS="*",
        OMNI_DATA_DIR=str(data_dir),
        OMNI_LOG_LEVEL="WARNING",
    )
    return env


def _line(name: str, f: Figures) -> str:
    return (
        f"{name:>6}: start->first getUpdates {f.start_to_first_poll_s:.2f} s | per message "
        f"p50 {f.p50_ms:.1f} ms, p95 {f.p95_ms:.1f} ms, CPU {f.cpu_ms_per_message:.1f} ms | "
        f"one user in a row p50 {f.one_user_p50_ms:.1f} ms, p95 {f.one_user_p95_ms:.1f} ms | "
        f"50 users at once {f.users_wall_s:.2f} s | "
        f"RSS {f.rss_100_mb:.0f} MB @100 -> {f.rss_1000_mb:.0f} MB @1000 ({f.growth:+.1%}; "
        f"child processes {f.children_rss_mb:.0f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200, help="sequential messages (default 200)")
    parser.add_argument("--one-user", type=int, default=300, help="one user's messages in a row (300)")
    parser.add_argument("--episodes", type=int, default=10_000, help="the long memory's episodes (10000)")
    parser.add_argument("--users", type=int, default=50, help="users writing at once (default 50)")
    parser.add_argument("--llm-delay", type=float, default=1.0, help="LLM delay for the users test (s)")
    parser.add_argument("--total", type=int, default=1000, help="messages before the last RSS sample")
    parser.add_argument("--skip-floor", action="store_true", help="measure omni only")
    parser.add_argument(
        "--no-streaming",
        action="store_true",
        help="omni with OMNI_STREAM_ANSWERS=false",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    args.total = max(args.total, WARM_UP + 2 * args.messages + args.one_user + USERS_ROUNDS * args.users)

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="omni-bench-")))
        omni_env = _env(tmp / "data") | ({"OMNI_STREAM_ANSWERS": "false"} if args.no_streaming else {})
        omni = Bot("omni", [sys.executable, "-m", "omni", "bot"], omni_env, tmp)
        stack.callback(omni.close)
        # Migrated beforehand: a restart, not a first install, is timed.
        migrate = [sys.executable, "-m", "omni", "db", "upgrade"]
        subprocess.run(migrate, env=omni.env, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        url = f"sqlite+aiosqlite:///{tmp / 'data' / 'omni.db'}"
        _seed_episodes(url, f"user:{LONG_MEMORY_USER}", args.episodes)
        bots = [omni]
        if not args.skip_floor:
            floor_cmd = [
                sys.executable,
                str(ROOT / "bench" / "_floor_bot.py"),
                TOKEN,
                "{tg}",
                "openai/fake-model",
                "{llm}",
                "sk-bench",
            ]
            floor_bot = Bot("floor", floor_cmd, _env(tmp / "floor"), tmp)
            stack.callback(floor_bot.close)
            bots.append(floor_bot)
        results = _measure(bots, args)
        long_memory = _long_memory(omni, args)
    for name, figures in results.items():
        print(_line(name, figures), flush=True)
    print(
        f"  omni: a user with {args.episodes} episodes p50 {long_memory['p50_ms']:.1f} ms vs "
        f"{long_memory['p50_none_ms']:.1f} ms with none: {long_memory['added_p50_ms']:+.1f} ms a message"
    )

    out: dict[str, Any] = {name: {**asdict(f), "rss_growth": f.growth} for name, f in results.items()}
    out["long_memory"] = long_memory
    if "floor" in results:
        ours, floor = results["omni"], results["floor"]
        out["ratio"] = {
            "p50": ours.p50_ms / floor.p50_ms,
            "p95": ours.p95_ms / floor.p95_ms,
            "rss_1000": ours.rss_1000_mb / floor.rss_1000_mb,
            "cpu_per_message": ours.cpu_ms_per_message / floor.cpu_ms_per_message,
            "one_user_p50": ours.one_user_p50_ms / floor.one_user_p50_ms,
        }
        print(
            f" ratio: p50 {out['ratio']['p50']:.2f}x, p95 {out['ratio']['p95']:.2f}x, "
            f"RSS@1000 {out['ratio']['rss_1000']:.2f}x, "
            f"CPU per message {out['ratio']['cpu_per_message']:.2f}x, "
            f"one user in a row p50 {out['ratio']['one_user_p50']:.2f}x the floor"
        )
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
