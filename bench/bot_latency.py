"""Latency, concurrency, start-up and memory of `omni bot`, against a bare PTB + litellm floor.

Both bots run as subprocesses against the same in-repo fakes (fake Bot API, fake LLM) served
from this process, and go through the same script:

1. start: process start -> first getUpdates call (omni's database is migrated beforehand, as
   on any restart; a first start also creates the schema);
2. warm-up (10 messages, not measured: litellm's import happens here);
3. per-message overhead with a 0 ms LLM: N sequential messages (10 users in turn), each timed
   from "update available" (pushed into the fake) to "reply received" (sendMessage at the fake),
   and the bot process's CPU time per message over them (steadier than latency on a busy machine);
4. 50 users writing at once with a 1 s LLM: wall time until all 50 replies;
5. memory: RSS after 100 messages and after 1,000 (the rest sent 25 users at a time).

    python bench/bot_latency.py [--messages 200] [--users 50] [--total 1000] [--json]

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from tests.fakes.llm_api import FakeLLM  # noqa: E402
from tests.fakes.server import serve_in_thread  # noqa: E402
from tests.fakes.telegram_api import TOKEN, FakeTelegram  # noqa: E402

WARM_UP = 10
SEQUENTIAL_USERS = 10
FILL_BATCH = 25
REPLY_TIMEOUT_S = 120.0


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


class Driver:
    """Pushes messages into the fake Bot API and waits for the bot's replies."""

    def __init__(self, tg: FakeTelegram) -> None:
        self.tg = tg
        self.handled = 0

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


def _run(
    name: str,
    cmd: list[str],
    env: dict[str, str],
    cwd: Path,
    args: argparse.Namespace,
    prepare: list[str] | None,
) -> Figures:
    tg, llm = FakeTelegram(), FakeLLM()
    with serve_in_thread(tg.app) as tg_url, serve_in_thread(llm.app) as llm_url:
        full_cmd = [part.format(tg=tg_url, llm=llm_url + "/v1") for part in cmd]
        env = {k: v.format(tg=tg_url, llm=llm_url + "/v1") for k, v in env.items()}
        if prepare:  # e.g. migrate the database first: a restart, not a first install, is timed
            subprocess.run(prepare, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        started = time.perf_counter()
        proc = subprocess.Popen(full_cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while not tg.get_updates_times:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited: {proc.stderr.read().decode() if proc.stderr else ''}")
                time.sleep(0.002)
            start_s = tg.get_updates_times[0] - started
            driver = Driver(tg)
            for i in range(WARM_UP):
                driver.one(100 + i % SEQUENTIAL_USERS, f"warm-up {i}")
            latencies, rss_100, cpu_before = [], 0.0, _cpu_s(proc.pid)
            for i in range(args.messages):
                latencies.append(driver.one(100 + i % SEQUENTIAL_USERS, f"message {i}"))
                if driver.handled == 100 or (not rss_100 and i == args.messages - 1):  # tiny runs
                    rss_100 = _rss_mb(proc.pid)
            cpu_ms = (_cpu_s(proc.pid) - cpu_before) * 1000 / args.messages
            llm.default_delay = args.llm_delay
            users_wall = driver.many([5000 + i for i in range(args.users)], "all at once")
            llm.default_delay = 0.0
            next_user = 10_000
            while driver.handled < args.total:
                batch = min(FILL_BATCH, args.total - driver.handled)
                driver.many(list(range(next_user, next_user + batch)), "filler")
                next_user += batch
            rss_1000 = _rss_mb(proc.pid)
            children = _children_rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    q = statistics.quantiles(latencies, n=100)
    p50 = statistics.median(latencies)
    return Figures(start_s, p50, q[94], users_wall, rss_100, rss_1000, children, cpu_ms)


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
        f"50 users at once {f.users_wall_s:.2f} s | "
        f"RSS {f.rss_100_mb:.0f} MB @100 -> {f.rss_1000_mb:.0f} MB @1000 ({f.growth:+.1%}; "
        f"child processes {f.children_rss_mb:.0f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200, help="sequential messages (default 200)")
    parser.add_argument("--users", type=int, default=50, help="users writing at once (default 50)")
    parser.add_argument("--llm-delay", type=float, default=1.0, help="LLM delay for the users test (s)")
    parser.add_argument("--total", type=int, default=1000, help="messages before the last RSS sample")
    parser.add_argument("--skip-floor", action="store_true", help="measure omni only")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    args.total = max(args.total, WARM_UP + args.messages + args.users)

    results: dict[str, Figures] = {}
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="omni-bench-")))
        omni_cmd = [sys.executable, "-m", "omni", "bot"]
        migrate = [sys.executable, "-m", "omni", "db", "upgrade"]
        results["omni"] = _run("omni", omni_cmd, _env(tmp / "data"), tmp, args, migrate)
        print(_line("omni", results["omni"]), flush=True)
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
            results["floor"] = _run("floor", floor_cmd, _env(tmp / "floor"), tmp, args, None)
            print(_line("floor", results["floor"]), flush=True)

    out: dict[str, Any] = {name: {**asdict(f), "rss_growth": f.growth} for name, f in results.items()}
    if "floor" in results:
        ours, floor = results["omni"], results["floor"]
        out["ratio"] = {
            "p50": ours.p50_ms / floor.p50_ms,
            "p95": ours.p95_ms / floor.p95_ms,
            "rss_1000": ours.rss_1000_mb / floor.rss_1000_mb,
            "cpu_per_message": ours.cpu_ms_per_message / floor.cpu_ms_per_message,
        }
        print(
            f" ratio: p50 {out['ratio']['p50']:.2f}x, p95 {out['ratio']['p95']:.2f}x, "
            f"RSS@1000 {out['ratio']['rss_1000']:.2f}x, "
            f"CPU per message {out['ratio']['cpu_per_message']:.2f}x the floor"
        )
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
