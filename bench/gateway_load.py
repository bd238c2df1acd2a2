"""Load on `omni gateway`: many clients at once, then a check that nothing was lost or doubled.

``--workers`` gateway processes (default 1) serve one database: SQLite in a temp folder, the
database at ``--database-url``, or with ``--postgres`` a throwaway database created on the test
server (``OMNI_TEST_POSTGRES_URL``, default ``postgresql://omni:omni@127.0.0.1:5432/postgres``)
and dropped afterwards. The bench migrates the database, then starts the workers, each on a
port of its own, against the in-repo fake LLM served from this process, which answers
``echo: <message>`` after ``--delay`` seconds.

``--clients`` clients send ``--requests`` requests in all, each client one after another, over
``--sessions`` sessions (client ``c`` writes to session ``c % sessions``, so with fewer sessions
than clients two clients share a session and its turns must be taken one at a time). Client
``c`` sends its ``k``-th request to worker ``(c + k) % workers``: the clients are spread round
robin over the workers, and each session's requests land on every worker, often two of them at
the same moment on different workers, which the gateway must serialise across processes (a
PostgreSQL advisory lock per session, memory/locks.py). Several workers need PostgreSQL: on
SQLite one process serves a database. The concurrency limit is set to the number of clients:
no request is refused by design.

Checked afterwards: every request got a 200 whose output is the echo of its own message, and
the database holds, per session, exactly one user message and one assistant message per
request, each answer right after its own question (no loss, no duplicate, no interleaved
halves of two turns). Reported: wall time, throughput, latency p50/p95/max, the requests each
worker got, the floor the fake LLM's delay sets (the busiest session's requests times the
delay), and the gateways' CPU time per request (where /proc exists): the clients and the fake
LLM run in this process and take CPU too, so on a small machine the wall time above the floor
is mostly CPU, not waiting.

    python bench/gateway_load.py [--requests 200] [--clients 50] [--sessions 25] [--delay 1.0]
                                 [--workers 1] [--database-url URL | --postgres]
                                 [--skills] [--quick] [--json]

``--quick`` is a small run (20 requests, 10 clients, 5 sessions, 0.2 s) for the test suite.
``--skills`` starts the built-in skills server too (the tools are offered, never called).
Session ids are new on every run, so a ``--database-url`` may be reused.
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
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from memory.migrate import upgrade  # noqa: E402
from memory.store import open_store  # noqa: E402
from tests.fakes.llm_api import FakeLLM  # noqa: E402
from tests.fakes.server import serve_in_thread  # noqa: E402
from tests.postgres import DEFAULT_URL, PostgresServer  # noqa: E402

START_TIMEOUT_S = 120.0  # litellm's import alone takes seconds on a busy machine
WARM_UP = 3  # requests per worker before the clock starts
_LISTENING = re.compile(r"gateway listening on (http://\S+)")


@dataclass
class Result:
    index: int
    session: str
    worker: int
    status: int
    ok: bool  # 200 and the echo of its own message
    latency_s: float


@dataclass
class Figures:
    requests: int
    clients: int
    sessions: int
    workers: int
    database: str  # the dialect: sqlite or postgresql
    delay_s: float
    answered: int
    wall_s: float
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    max_ms: float
    floor_s: float
    per_worker: list[int]  # requests sent to each worker
    sessions_across_workers: int  # sessions whose requests went to more than one worker
    gateway_cpu_ms_per_request: float | None  # the gateway processes' own CPU time (Linux)
    bench_cpu_ms_per_request: float  # this process's: the clients and the fake LLM
    stored_ok: bool
    problems: list[str]


@dataclass(frozen=True)
class Plan:
    requests: int
    clients: int
    sessions: int
    workers: int
    run: str  # this run's prefix of session ids

    def session(self, client: int) -> str:
        return f"{self.run}-s{client % self.sessions}"

    def sends(self, client: int) -> list[tuple[int, int]]:
        """Client ``client``'s (request index, worker), in the order it sends them."""
        indices = range(client, self.requests, self.clients)
        return [(index, (client + k) % self.workers) for k, index in enumerate(indices)]


def text_of(index: int) -> str:
    return f"request {index}"


def cpu_s(pids: list[int]) -> float | None:
    """CPU time (user + system) the processes have used so far; None where /proc is missing."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def run_load(
    plan: Plan, bases: list[str], pids: list[int]
) -> tuple[list[Result], float, float | None, float]:
    """Every request's result, the wall time, and the CPU seconds the gateways and this process
    (the clients and the fake LLM) used meanwhile."""
    # At most one request per client in flight; a kept connection per client and worker.
    pool = plan.clients * len(bases)
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:

        async def one(index: int, session: str, worker: int) -> Result:
            started = time.perf_counter()
            body = {"session_id": session, "message": text_of(index)}
            response = await http.post(f"{bases[worker]}/message", json=body)
            latency = time.perf_counter() - started
            ok = response.status_code == 200 and response.json() == {
                "session_id": session,
                "output": f"echo: {text_of(index)}",
            }
            return Result(index, session, worker, response.status_code, ok, latency)

        async def client(number: int) -> list[Result]:
            session = plan.session(number)
            return [await one(index, session, worker) for index, worker in plan.sends(number)]

        for worker, base in enumerate(bases):  # litellm's first calls and first database writes
            for i in range(WARM_UP):
                body = {"session_id": f"{plan.run}-warm-up-{worker}", "message": f"warm up {i}"}
                (await http.post(f"{base}/message", json=body)).raise_for_status()
        cpu_before, own_before, started = cpu_s(pids), time.process_time(), time.perf_counter()
        per_client = await asyncio.gather(*(client(c) for c in range(plan.clients)))
        wall, cpu_after, own = time.perf_counter() - started, cpu_s(pids), time.process_time() - own_before
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
            questions = [m.content or "" for m in stored if m.role == "user"]
            answers = [m.content for m in stored if m.role == "assistant"]
            if sorted(questions) != sorted(texts):
                problems.append(f"{session}: {len(questions)} questions stored for {len(texts)} requests")
            if len(answers) != len(texts):
                problems.append(f"{session}: {len(answers)} answers stored for {len(texts)} requests")
            # Two turns of one session run at once store question, question, answer, answer.
            pairs = zip(stored[::2], stored[1::2], strict=False)
            if any(q.role != "user" or a.content != f"echo: {q.content}" for q, a in pairs):
                problems.append(f"{session}: an answer is not right after its own question")
    return problems


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A new database on the test server (tests/postgres.py) for this run, dropped after it."""
    admin = os.environ.get("OMNI_TEST_POSTGRES_URL", DEFAULT_URL)
    server = PostgresServer(admin.replace("postgresql+asyncpg://", "postgresql://", 1))
    name = f"omni_bench_{uuid.uuid4().hex[:12]}"
    try:
        server.run(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # any driver, network or auth failure: say which server, and why
        where = make_url(server.admin_url).render_as_string()
        problem = f"{exc.__class__.__name__}: {exc}"
        raise SystemExit(f"--postgres: cannot create a database at {where}: {problem}") from None
    try:
        yield server.url_for(name)
    finally:
        server.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_gateway(
    workdir: Path, number: int, llm_url: str, clients: int, database_url: str, skills: bool
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNI_")}
    env.update(
        OMNI_LLM_MODEL="openai/fake-model",
        OMNI_LLM_API_BASE=llm_url + "/v1",
        OMNI_LLM_API_KEY="sk-bench",
        OMNI_DATA_DIR=str(workdir / "data"),
        OMNI_DATABASE_URL=database_url,
        OMNI_GATEWAY_CONCURRENCY=str(clients),
        OMNI_LOG_LEVEL="INFO",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
    )
    if not skills:
        no_skills = workdir / "mcp.json"
        no_skills.write_text('{"mcpServers": {"skills": {"disabled": true}}}', encoding="utf-8")
        env["OMNI_MCP_CONFIG"] = str(no_skills)
    log = log_of(workdir, number).open("wb")
    cmd = [sys.executable, "-m", "omni", "gateway", "--port", "0"]
    return subprocess.Popen(cmd, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=log)


def log_of(workdir: Path, number: int) -> Path:
    return workdir / f"gateway{number}.log"


def wait_listening(proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        found = _LISTENING.search(log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if proc.poll() is not None:
            raise SystemExit(f"omni gateway exited {proc.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    raise SystemExit(f"omni gateway did not listen within {START_TIMEOUT_S:.0f} s")


def stop(procs: list[subprocess.Popen[bytes]]) -> list[int | None]:
    """SIGTERM to every gateway still running, then their exit codes (None: killed after 60 s)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    codes: list[int | None] = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=60))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            codes.append(None)
    return codes


def measure(args: argparse.Namespace, workdir: Path, url: str) -> Figures:
    plan = Plan(args.requests, args.clients, args.sessions, args.workers, f"load-{uuid.uuid4().hex[:8]}")
    upgrade(url)  # once, before the workers: each would otherwise migrate it at start, together
    llm = FakeLLM(default_delay=args.delay)
    with serve_in_thread(llm.app) as llm_url:
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for number in range(args.workers):  # all start together: a start takes seconds
                procs.append(start_gateway(workdir, number, llm_url, args.clients, url, args.skills))
            bases = [wait_listening(proc, log_of(workdir, n)) for n, proc in enumerate(procs)]
            results, wall, cpu, own = asyncio.run(run_load(plan, bases, [p.pid for p in procs]))
        finally:
            codes = stop(procs)
    problems = [f"gateway {n} exited {code} after SIGTERM" for n, code in enumerate(codes) if code != 0]
    bad = [r for r in results if not r.ok]
    problems += [f"request {r.index} ({r.session}) answered {r.status} or not its own echo" for r in bad[:10]]
    stored = asyncio.run(check_stored(url, results))
    problems += stored
    latencies = sorted(r.latency_s * 1000 for r in results)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    workers_of: dict[str, set[int]] = defaultdict(set)
    for r in results:
        workers_of[r.session].add(r.worker)
    per_session = max(sum(1 for r in results if r.session == s) for s in workers_of)
    return Figures(
        requests=args.requests,
        clients=args.clients,
        sessions=args.sessions,
        workers=args.workers,
        database=make_url(url).get_backend_name(),
        delay_s=args.delay,
        answered=len(results) - len(bad),
        wall_s=round(wall, 3),
        throughput_rps=round(len(results) / wall, 1),
        p50_ms=round(cuts[49], 1),
        p95_ms=round(cuts[94], 1),
        max_ms=round(latencies[-1], 1),
        floor_s=round(per_session * args.delay, 3),
        per_worker=[sum(1 for r in results if r.worker == w) for w in range(args.workers)],
        sessions_across_workers=sum(1 for workers in workers_of.values() if len(workers) > 1),
        gateway_cpu_ms_per_request=None if cpu is None else round(cpu * 1000 / len(results), 1),
        bench_cpu_ms_per_request=round(own * 1000 / len(results), 1),
        stored_ok=not stored,
        problems=problems,
    )


def report(f: Figures) -> None:
    load = f"{f.requests} requests, {f.clients} clients, {f.sessions} sessions"
    print(f"{load}, {f.workers} worker(s) on {f.database}, LLM delay {f.delay_s} s")
    rows = [
        ("answered correctly", f"{f.answered}/{f.requests}"),
        ("stored once each, in order", "yes" if f.stored_ok else "NO"),
        ("wall", f"{f.wall_s:.2f} s (floor set by the LLM delay: {f.floor_s:.2f} s)"),
        ("throughput", f"{f.throughput_rps:.1f} requests/s"),
        ("latency p50 / p95 / max", f"{f.p50_ms:.0f} / {f.p95_ms:.0f} / {f.max_ms:.0f} ms"),
        ("requests per worker", ", ".join(str(n) for n in f.per_worker)),
        ("sessions on several workers", f"{f.sessions_across_workers}/{f.sessions}"),
    ]
    if f.gateway_cpu_ms_per_request is not None:
        rows.append(("gateway CPU (all workers)", f"{f.gateway_cpu_ms_per_request:.1f} ms per request"))
    rows.append(("bench CPU (clients, fake LLM)", f"{f.bench_cpu_ms_per_request:.1f} ms per request"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    for problem in f.problems:
        print(f"PROBLEM: {problem}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=25)
    parser.add_argument("--delay", type=float, default=1.0, help="the fake LLM's answer delay, s")
    parser.add_argument("--workers", type=int, default=1, help="gateway processes on the one database")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database-url", help="default: SQLite in a temp folder")
    where.add_argument(
        "--postgres", action="store_true", help="a throwaway database on the test server, dropped after"
    )
    parser.add_argument("--skills", action="store_true", help="start the built-in skills server too")
    parser.add_argument("--quick", action="store_true", help="20 requests, 10 clients, 5 sessions, 0.2 s")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.clients, args.sessions, args.delay = 20, 10, 5, 0.2
    if not 1 <= args.sessions <= args.clients <= args.requests:
        parser.error("need 1 <= --sessions <= --clients <= --requests")
    if not 1 <= args.workers <= args.clients:
        parser.error("need 1 <= --workers <= --clients")
    on_sqlite = not args.postgres and (
        args.database_url is None or make_url(args.database_url).get_backend_name() == "sqlite"
    )
    if args.workers > 1 and on_sqlite:
        parser.error(
            "--workers above 1 needs PostgreSQL (--postgres or --database-url): one process per SQLite file"
        )
    with tempfile.TemporaryDirectory(prefix="omni-gateway-load-") as tmp:
        workdir = Path(tmp)
        if args.postgres:
            with throwaway_postgres() as url:
                figures = measure(args, workdir, url)
        else:
            url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'data' / 'omni.db'}"
            figures = measure(args, workdir, url)
    report(figures)
    if args.json:
        print(json.dumps(asdict(figures)))
    return 0 if not figures.problems else 1


if __name__ == "__main__":
    sys.exit(main())
