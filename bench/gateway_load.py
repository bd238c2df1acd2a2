"""Load on `omni gateway`: many clients at once, then a check that nothing was lost or doubled.

The gateway runs as a subprocess (its own data directory in a temp folder, or
``--database-url``) against the in-repo fake LLM served from this process, which answers
``echo: <message>`` after ``--delay`` seconds. ``--clients`` clients send ``--requests``
requests in all, each client one after another, over ``--sessions`` sessions (client ``c``
writes to session ``c % sessions``, so with fewer sessions than clients two clients share a
session and the gateway must take their turns one at a time). The concurrency limit is set to
the number of clients: no request is refused by design.

Checked afterwards: every request got a 200 whose output is the echo of its own message, and
the database holds, per session, exactly one user message and one assistant message per
request, each answer right after its question (no loss, no duplicate, no interleaving).
Reported: wall time, throughput, latency p50/p95/max, the floor the fake LLM's delay sets (the
busiest session's requests times the delay), and the gateway process's CPU time per request
(where /proc exists): the client and the fake LLM run in this process and take CPU too, so on a
small machine the wall time above the floor is mostly CPU, not waiting.

    python bench/gateway_load.py [--requests 200] [--clients 50] [--sessions 25] [--delay 1.0]
                                 [--skills] [--database-url URL] [--quick] [--json]

``--quick`` is a small run (20 requests, 10 clients, 5 sessions, 0.2 s) for the test suite.
``--skills`` starts the built-in skills server too (the tools are offered, never called).
With ``--json`` the last line is one JSON object of the figures. Exit code 0 when every check
passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memory.store import open_store  # noqa: E402
from tests.fakes.llm_api import FakeLLM  # noqa: E402
from tests.fakes.server import serve_in_thread  # noqa: E402

START_TIMEOUT_S = 120.0  # litellm's import alone takes seconds on a busy machine
WARM_UP = 3
_LISTENING = re.compile(r"gateway listening on (http://\S+)")


@dataclass
class Result:
    index: int
    session: str
    status: int
    ok: bool  # 200 and the echo of its own message
    latency_s: float


@dataclass
class Figures:
    requests: int
    clients: int
    sessions: int
    delay_s: float
    answered: int
    wall_s: float
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    max_ms: float
    floor_s: float
    gateway_cpu_ms_per_request: float | None  # the gateway process's own CPU time (Linux)
    bench_cpu_ms_per_request: float  # this process's: the clients and the fake LLM
    stored_ok: bool
    problems: list[str]


def text_of(index: int) -> str:
    return f"request {index}"


def cpu_s(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far; None where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_load(
    base: str, requests: int, clients: int, sessions: int, pid: int
) -> tuple[list[Result], float, float | None, float]:
    """Every request's result, the wall time, and the CPU seconds the gateway and this process
    (the clients and the fake LLM) used meanwhile."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as http:

        async def one(index: int, session: str) -> Result:
            started = time.perf_counter()
            response = await http.post("/message", json={"session_id": session, "message": text_of(index)})
            latency = time.perf_counter() - started
            ok = response.status_code == 200 and response.json() == {
                "session_id": session,
                "output": f"echo: {text_of(index)}",
            }
            return Result(index, session, response.status_code, ok, latency)

        async def client(number: int) -> list[Result]:
            session = f"s{number % sessions}"
            return [await one(i, session) for i in range(number, requests, clients)]

        for i in range(WARM_UP):  # litellm's first calls and the first database writes
            await http.post("/message", json={"session_id": "warm-up", "message": f"warm up {i}"})
        cpu_before, own_before, started = cpu_s(pid), time.process_time(), time.perf_counter()
        per_client = await asyncio.gather(*(client(c) for c in range(clients)))
        wall, cpu_after, own = time.perf_counter() - started, cpu_s(pid), time.process_time() - own_before
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    return [r for results in per_client for r in results], wall, cpu, own


async def check_stored(url: str, results: list[Result]) -> list[str]:
    """Problems with what the database holds, per session; empty when all is well."""
    expected: dict[str, set[str]] = defaultdict(set)
    for r in results:
        expected[r.session].add(text_of(r.index))
    problems: list[str] = []
    async with open_store(url) as store:
        for session, texts in sorted(expected.items()):
            ref = await store.conversations.current(f"gw:{session}")
            stored = await store.conversations.messages(ref.session_id)
            questions = [m.content for m in stored if m.role == "user"]
            answers = [m.content for m in stored if m.role == "assistant"]
            if sorted(questions) != sorted(texts):
                problems.append(f"{session}: {len(questions)} questions stored for {len(texts)} requests")
            if len(answers) != len(texts):
                problems.append(f"{session}: {len(answers)} answers stored for {len(texts)} requests")
            pairs = zip(stored[::2], stored[1::2], strict=False)
            if any(q.role != "user" or a.content != f"echo: {q.content}" for q, a in pairs):
                problems.append(f"{session}: an answer is not right after its own question")
    return problems


def start_gateway(
    workdir: Path, llm_url: str, clients: int, database_url: str | None, skills: bool
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNI_")}
    env.update(
        OMNI_LLM_MODEL="openai/fake-model",
        OMNI_LLM_API_BASE=llm_url + "/v1",
        OMNI_LLM_API_KEY="sk-bench",
        OMNI_DATA_DIR=str(workdir / "data"),
        OMNI_GATEWAY_CONCURRENCY=str(clients),
        OMNI_LOG_LEVEL="INFO",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    if database_url:
        env["OMNI_DATABASE_URL"] = database_url
    if not skills:
        no_skills = workdir / "mcp.json"
        no_skills.write_text('{"mcpServers": {"skills": {"disabled": true}}}', encoding="utf-8")
        env["OMNI_MCP_CONFIG"] = str(no_skills)
    log = (workdir / "gateway.log").open("wb")
    cmd = [sys.executable, "-m", "omni", "gateway", "--port", "0"]
    return subprocess.Popen(cmd, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=log)


def wait_listening(proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = _LISTENING.search(log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if proc.poll() is not None:
            raise SystemExit(f"omni gateway exited {proc.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"omni gateway did not listen within {START_TIMEOUT_S:.0f} s")


def measure(args: argparse.Namespace, workdir: Path) -> Figures:
    llm = FakeLLM(default_delay=args.delay)
    with serve_in_thread(llm.app) as llm_url:
        proc = start_gateway(workdir, llm_url, args.clients, args.database_url, args.skills)
        try:
            base = wait_listening(proc, workdir / "gateway.log")
            load = run_load(base, args.requests, args.clients, args.sessions, proc.pid)
            results, wall, cpu, own = asyncio.run(load)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
    problems = [] if code == 0 else [f"the gateway exited {code} after SIGTERM"]
    bad = [r for r in results if not r.ok]
    problems += [f"request {r.index} ({r.session}) answered {r.status} or not its own echo" for r in bad[:10]]
    url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'data' / 'omni.db'}"
    stored = asyncio.run(check_stored(url, results))
    problems += stored
    latencies = sorted(r.latency_s * 1000 for r in results)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    per_session = max(sum(1 for r in results if r.session == s) for s in {r.session for r in results})
    return Figures(
        requests=args.requests,
        clients=args.clients,
        sessions=args.sessions,
        delay_s=args.delay,
        answered=len(results) - len(bad),
        wall_s=round(wall, 3),
        throughput_rps=round(len(results) / wall, 1),
        p50_ms=round(cuts[49], 1),
        p95_ms=round(cuts[94], 1),
        max_ms=round(latencies[-1], 1),
        floor_s=round(per_session * args.delay, 3),
        gateway_cpu_ms_per_request=None if cpu is None else round(cpu * 1000 / len(results), 1),
        bench_cpu_ms_per_request=round(own * 1000 / len(results), 1),
        stored_ok=not stored,
        problems=problems,
    )


def report(f: Figures) -> None:
    print(f"{f.requests} requests, {f.clients} clients, {f.sessions} sessions, LLM delay {f.delay_s} s")
    print(f"answered correctly: {f.answered}/{f.requests}")
    print(f"database: one question and one answer per request, in order: {'yes' if f.stored_ok else 'NO'}")
    print(f"wall: {f.wall_s:.2f} s (floor set by the LLM delay: {f.floor_s:.2f} s)")
    print(f"throughput: {f.throughput_rps:.1f} requests/s")
    print(f"latency: p50 {f.p50_ms:.0f} ms, p95 {f.p95_ms:.0f} ms, max {f.max_ms:.0f} ms")
    if f.gateway_cpu_ms_per_request is not None:
        print(f"gateway CPU: {f.gateway_cpu_ms_per_request:.1f} ms per request")
    print(f"bench CPU (clients and fake LLM): {f.bench_cpu_ms_per_request:.1f} ms per request")
    for problem in f.problems:
        print(f"PROBLEM: {problem}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=25)
    parser.add_argument("--delay", type=float, default=1.0, help="the fake LLM's answer delay, s")
    parser.add_argument("--skills", action="store_true", help="start the built-in skills server too")
    parser.add_argument("--database-url", help="default: SQLite in a temp folder")
    parser.add_argument("--quick", action="store_true", help="20 requests, 10 clients, 5 sessions, 0.2 s")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.clients, args.sessions, args.delay = 20, 10, 5, 0.2
    if not 1 <= args.sessions <= args.clients <= args.requests:
        parser.error("need 1 <= --sessions <= --clients <= --requests")
    with tempfile.TemporaryDirectory(prefix="omni-gateway-load-") as tmp:
        figures = measure(args, Path(tmp))
    report(figures)
    if args.json:
        print(json.dumps(asdict(figures)))
    return 0 if not figures.problems else 1


if __name__ == "__main__":
    sys.exit(main())
