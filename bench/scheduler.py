"""Scheduled jobs at scale through the real `omni bot`: its idle CPU, and the delay from a job's
due time to its delivery.

The database is migrated and seeded before the bot starts, through the store's own code path
(``store.schedules.create``, as the agent's schedule tools store a job): ``--jobs`` reminders of
``--users`` users (chat = user, session ``tg:<user>``, zone UTC), a third each one-shot, daily
interval and daily cron, due from a day to a month away — except ``--due`` of them (half
one-shot, half daily interval), due evenly over ``--window`` seconds, ``--lead`` + ``--idle``
seconds after the seeding ends. Each reminder's text is unique, so each delivery is matched to
its job.

Two `omni bot` processes run side by side, each against its own in-repo fakes (fake Bot API,
fake LLM) served from this process: ``omni`` on the seeded database, and ``floor``, the same
bot on a migrated database with no job at all. Measured:

1. idle CPU: both bots' CPU time (utime + stime from /proc, children excluded) over the same
   ``--idle`` seconds just before the first job falls due (both run at the same time, so a
   shared machine's drift weighs on both alike), once both are done warming up (litellm's
   import in the background after the first getUpdates); the difference is what the jobs cost
   an idle bot (the scheduler sleeps until the soonest due time, at most a minute);
2. delivery: each due job's reminder as the fake Bot API receives it (its sendMessage's
   ``perf_counter`` time, turned into wall time by an offset taken here) minus its due time:
   p50/p95/max; how many arrived exactly once, twice, or never; and the bot's CPU time per
   delivered reminder over the window (the floor's CPU over the same time for comparison).

``--postgres`` runs both bots on throwaway databases on the test server (bench/_postgres.py,
``OMNI_TEST_POSTGRES_URL``), dropped afterwards; otherwise SQLite files in a temp folder.

    python bench/scheduler.py [--jobs 10000] [--users 1000] [--due 1000] [--window 20]
                              [--idle 20] [--lead 20] [--postgres] [--skip-floor] [--json]

With ``--json`` the last line is one JSON object of the figures. Exit code 0 when every due job
was delivered exactly once, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.schedule import Rule, first_run, zone  # noqa: E402
from bench import _postgres  # noqa: E402
from bench.bot_latency import Bot, _cpu_s, _env  # noqa: E402
from memory import open_store  # noqa: E402
from memory.migrate import upgrade  # noqa: E402
from memory.schedules import NewJob, ScheduleKind  # noqa: E402

USER_BASE = 700_000_000  # user (and chat) ids of the seeded jobs
# The idle sample starts once each bot used at most QUIET_CPU_S of CPU in each of QUIET_STEPS
# seconds in a row: the warm-up it does in the background after its first getUpdates (litellm's
# import: seconds of CPU, longer on a busy machine) is no idle time.
QUIET_CPU_S = 0.02
QUIET_STEPS = 2
MARGIN_S = 1.0  # between the idle sample's end and the first due time
TAIL_S = 1.0  # after the last expected delivery: time for a duplicate to show up
DELIVERY_TIMEOUT_S = 60.0  # past the window's end, the reminders still missing are counted missing
TEXT = "bench reminder {n}"
TEXT_RE = re.compile(r"bench reminder (\d+)\b")


@dataclass(frozen=True, slots=True)
class Plan:
    """When the due reminders fall due (wall-clock seconds), by their number."""

    due_at: dict[int, float]
    seed_s: float

    @property
    def first_due(self) -> float:
        return min(self.due_at.values())

    @property
    def last_due(self) -> float:
        return max(self.due_at.values())


@dataclass(frozen=True, slots=True)
class Figures:
    database: str
    jobs: int
    users: int
    due: int
    window_s: float
    seed_s: float
    start_s: float  # process start -> first getUpdates, the seeded bot
    idle_s: float  # the idle sample's length
    idle_settled: bool  # False: the bots were still warming up when the sample had to start
    idle_cpu_pct: float
    floor_idle_cpu_pct: float | None  # the same bot without jobs, over the same seconds
    delivered: int  # distinct due reminders received
    exactly_once: int
    twice_or_more: int
    missing: int
    unexpected: int  # messages that are no due reminder (a far job fired early, or anything else)
    delay_ms_p50: float | None  # None when nothing was delivered
    delay_ms_p95: float | None
    delay_ms_max: float | None
    delay_ms_min: float | None
    window_cpu_ms: float  # the bot's CPU from the idle sample's end until a second after the last delivery
    floor_window_cpu_ms: float | None  # the floor's over the same time
    cpu_ms_per_delivery: float | None  # the window's CPU less the floor's, per reminder


def _new_job(n: int, user: int, due: datetime, schedule: ScheduleKind) -> NewJob:
    """Reminder ``n`` of ``user``, first due at ``due`` (daily when it recurs)."""
    return NewJob(
        user_id=user,
        chat_id=user,
        thread_id=None,
        session_key=f"tg:{user}",
        kind="reminder",
        text=TEXT.format(n=n),
        schedule=schedule,
        timezone="UTC",
        next_run_at=due,
        cron=_cron(n) if schedule == "cron" else None,
        interval_s=86_400 if schedule == "interval" else None,
        start_at=None if schedule == "cron" else due,
    )


def _cron(n: int) -> str:
    return f"{n % 60} {n % 24} * * *"


def _far_due(n: int, now: datetime, schedule: ScheduleKind) -> datetime:
    """A far job's first due time, a day to a month away; a cron job's from its rule."""
    if schedule == "cron":
        due = first_run(Rule("cron", cron=_cron(n)), zone("UTC"), now + timedelta(days=1))
        assert due is not None
        return due
    return now + timedelta(days=1 + n % 30, seconds=n)


def seed(url: str, args: argparse.Namespace) -> Plan:
    """Store the jobs; the due ones fall due ``lead + idle`` seconds after the last is stored."""
    far_kinds: tuple[ScheduleKind, ...] = ("once", "interval", "cron")
    due_kinds: tuple[ScheduleKind, ...] = ("once", "interval")

    async def go() -> Plan:
        started = time.perf_counter()
        async with open_store(url) as store:
            now = datetime.now(UTC)
            for n in range(args.due, args.jobs):  # the far jobs first: the clock of the due
                kind = far_kinds[n % 3]  # ones starts once they are all stored
                await store.schedules.create(
                    _new_job(n, USER_BASE + n % args.users, _far_due(n, now, kind), kind)
                )
            first = time.time() + args.lead + args.idle
            # Rounded to the microsecond a database keeps: the delay is measured from the due
            # time the scheduler sees.
            due_at = {n: round(first + args.window * n / args.due, 6) for n in range(args.due)}
            for n, at in due_at.items():
                due = datetime.fromtimestamp(at, UTC)
                await store.schedules.create(_new_job(n, USER_BASE + n % args.users, due, due_kinds[n % 2]))
        return Plan(due_at=due_at, seed_s=time.perf_counter() - started)

    return asyncio.run(go())


def _omni(name: str, data_dir: Path, url: str, cwd: Path) -> Bot:
    env = _env(data_dir)
    env["OMNI_DATABASE_URL"] = url
    return Bot(name, [sys.executable, "-m", "omni", "bot"], env, cwd)


def _start_all(bots: list[Bot]) -> list[float]:
    """Start the bots at once (start-up is not what is measured); each one's start seconds."""
    with ThreadPoolExecutor(len(bots)) as pool:
        return list(pool.map(Bot.start, bots))


def _sleep_until(wall: float) -> None:
    time.sleep(max(0.0, wall - time.time()))


def _wait_quiet(bots: list[Bot], until: float) -> bool:
    """Wait until every bot is quiet (``QUIET_STEPS`` quiet seconds in a row), or until ``until``
    (wall clock); whether they were."""
    quiet, last = 0, [_cpu_s(bot.pid) for bot in bots]
    while time.time() + 1.0 <= until:
        time.sleep(1.0)
        now = [_cpu_s(bot.pid) for bot in bots]
        quiet = quiet + 1 if all(n - b <= QUIET_CPU_S for n, b in zip(now, last, strict=True)) else 0
        last = now
        if quiet >= QUIET_STEPS:
            return True
    return False


def _idle_cpu(bots: list[Bot], plan: Plan, args: argparse.Namespace) -> tuple[float, bool, list[float]]:
    """Every bot's CPU % over the same idle stretch, ending ``MARGIN_S`` before the first due
    time, once they are quiet; the stretch is shorter than ``--idle`` when they took longer than
    ``--lead`` to get there, and at least a second."""
    end = plan.first_due - MARGIN_S
    settled = _wait_quiet(bots, until=end - 1.0)
    if end - time.time() < 0.5:
        raise SystemExit(
            f"the bots were not up before the first due time; raise --lead (now {args.lead:g} s)"
        )
    _sleep_until(end - args.idle)
    before = [_cpu_s(bot.pid) for bot in bots]
    t0 = time.perf_counter()
    _sleep_until(end)
    elapsed = time.perf_counter() - t0
    cpu = [(_cpu_s(bot.pid) - b) / elapsed * 100 for bot, b in zip(bots, before, strict=True)]
    return elapsed, settled, cpu


def _deliveries(bot: Bot, plan: Plan, args: argparse.Namespace) -> tuple[dict[int, list[float]], int]:
    """Each due reminder's delivery times (wall clock), and how many other messages came."""
    perf0, wall0 = time.perf_counter(), time.time()
    deadline = plan.last_due + DELIVERY_TIMEOUT_S
    while True:  # until every due reminder came, or the deadline; then a tail for duplicates
        got = {int(m.group(1)) for text in bot.tg.texts() if (m := TEXT_RE.search(text))}
        if len(got & plan.due_at.keys()) == args.due or time.time() > deadline:
            break
        time.sleep(0.2)
    time.sleep(TAIL_S)
    sent = bot.tg.wait_for_messages(0)  # every message so far, copied under the fake's lock
    times: dict[int, list[float]] = {}
    unexpected = 0
    for message in sent:
        match = TEXT_RE.search(message.text)
        if match is None or int(match.group(1)) not in plan.due_at:
            unexpected += 1
            continue
        times.setdefault(int(match.group(1)), []).append(message.at - perf0 + wall0)
    return times, unexpected


def _quantiles_ms(delays: list[float]) -> tuple[float | None, ...]:
    """p50, p95, max and min in ms."""
    if not delays:
        return (None,) * 4
    ms = sorted(d * 1000 for d in delays)
    p95 = statistics.quantiles(ms, n=100, method="inclusive")[94] if len(ms) > 1 else ms[0]
    return statistics.median(ms), p95, ms[-1], ms[0]


def measure(omni: Bot, floor: Bot | None, plan: Plan, args: argparse.Namespace, database: str) -> Figures:
    bots = [omni] if floor is None else [omni, floor]
    starts = _start_all(bots)
    idle_s, settled, idle = _idle_cpu(bots, plan, args)
    cpu_before = [_cpu_s(bot.pid) for bot in bots]
    times, unexpected = _deliveries(omni, plan, args)
    cpu = [(_cpu_s(bot.pid) - b) * 1000 for bot, b in zip(bots, cpu_before, strict=True)]
    delays = [min(at) - plan.due_at[n] for n, at in times.items()]
    p50, p95, worst, best = _quantiles_ms(delays)
    return Figures(
        database=database,
        jobs=args.jobs,
        users=args.users,
        due=args.due,
        window_s=args.window,
        seed_s=plan.seed_s,
        start_s=starts[0],
        idle_s=idle_s,
        idle_settled=settled,
        idle_cpu_pct=idle[0],
        floor_idle_cpu_pct=idle[1] if floor is not None else None,
        delivered=len(times),
        exactly_once=sum(len(at) == 1 for at in times.values()),
        twice_or_more=sum(len(at) > 1 for at in times.values()),
        missing=args.due - len(times),
        unexpected=unexpected,
        delay_ms_p50=p50,
        delay_ms_p95=p95,
        delay_ms_max=worst,
        delay_ms_min=best,
        window_cpu_ms=cpu[0],
        floor_window_cpu_ms=cpu[1] if floor is not None else None,
        cpu_ms_per_delivery=(cpu[0] - (cpu[1] if floor is not None else 0.0)) / len(times) if times else None,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _report(f: Figures) -> None:
    print(
        f"{f.jobs:,} jobs of {f.users:,} users on {f.database}, seeded in {f.seed_s:.1f} s; "
        f"{f.due:,} due over {f.window_s:g} s, the rest a day to a month away; "
        f"start -> first getUpdates {f.start_s:.2f} s"
    )
    floor = f.floor_idle_cpu_pct is not None and f.floor_window_cpu_ms is not None
    print(f"  {'':<34}{'omni, jobs':>12}{'floor, none' if floor else '':>13}")
    print(
        f"  {f'idle CPU over {f.idle_s:.1f} s':<34}{f.idle_cpu_pct:>10.2f} %"
        + (f"{f.floor_idle_cpu_pct:>11.2f} %" if floor else "")
        + ("" if f.idle_settled else "  (still warming up: no idle figure; raise --lead)")
    )
    print(
        f"  {'CPU while delivering':<34}{f.window_cpu_ms:>9.0f} ms"
        + (f"{f.floor_window_cpu_ms:>10.0f} ms" if floor else "")
    )
    per = "-" if f.cpu_ms_per_delivery is None else f"{f.cpu_ms_per_delivery:.2f} ms"
    print(
        f"  due -> delivered: p50 {_ms(f.delay_ms_p50)}, p95 {_ms(f.delay_ms_p95)}, "
        f"max {_ms(f.delay_ms_max)}, min {_ms(f.delay_ms_min)}; CPU per reminder {per}"
        + (" (less the floor's)" if floor else "")
    )
    print(
        f"  {f.exactly_once:,}/{f.due:,} delivered exactly once, {f.twice_or_more} more than once, "
        f"{f.missing} missing; {f.unexpected} other messages"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in all (default 10000)")
    parser.add_argument("--users", type=int, default=1_000, help="users they belong to (default 1000)")
    parser.add_argument("--due", type=int, default=1_000, help="jobs due during the run (default 1000)")
    parser.add_argument("--window", type=float, default=20.0, help="seconds the due jobs spread over (20)")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle CPU sampled (20)")
    parser.add_argument(
        "--lead", type=float, default=20.0, help="seconds between seeding and the idle sample: start-up (20)"
    )
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="throwaway databases on the test server (OMNI_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--skip-floor", action="store_true", help="no second bot without jobs")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    if not 0 < args.due <= args.jobs or args.users < 1 or args.window < 0 or args.idle <= 0:
        parser.error("need 0 < --due <= --jobs, --users >= 1, --window >= 0, --idle > 0")

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="omni-bench-sched-")))
        names = ["omni"] if args.skip_floor else ["omni", "floor"]
        urls = {}
        for name in names:
            if args.postgres:
                urls[name] = stack.enter_context(_postgres.throwaway())
            else:
                (tmp / name).mkdir()
                urls[name] = f"sqlite+aiosqlite:///{tmp / name / 'omni.db'}"
            upgrade(urls[name])
        plan = seed(urls["omni"], args)
        bots = {name: _omni(name, tmp / name, urls[name], tmp) for name in names}
        for bot in bots.values():
            stack.callback(bot.close)  # before the databases are dropped (LIFO)
        figures = measure(
            bots["omni"], bots.get("floor"), plan, args, "postgresql" if args.postgres else "sqlite"
        )
    _report(figures)
    if args.json:
        print(json.dumps(asdict(figures)))
    return 0 if figures.exactly_once == args.due and not figures.twice_or_more else 1


if __name__ == "__main__":
    sys.exit(main())
