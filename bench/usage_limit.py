"""What usage reporting and the daily token limit cost, on months of usage rows in one SQLite file.

    python bench/usage_limit.py [--users 100] [--days 180] [--calls 20] [--heavy 400] [--json]

The store is migrated to head in a temporary folder and filled with ``--days`` days of LLM calls:
``--calls`` a day for each of ``--users`` users, and ``--heavy`` a day for one more. Reported:

- the limit's check before every turn (``DailyLimit.check``: the user's own limit and their
  tokens since 00:00 UTC, one statement), for a typical user and the heavy one: what each
  message of a user with an id pays, limit or not;
- /usage's reads (24 h, 30 days, today's allowance);
- /status's reads, each alone: everyone's 24 h, everyone's 30 days, the top five users over 30
  days; with the ``ix_usage_created_at`` index of migration 0004 and again after dropping it.

Times are p50/p95 over ``--repeat`` runs (the /status reads: a tenth as many), through the
same ``Store`` the bot uses (the /status reads run in its read thread, off the event loop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402

from agent.limits import DailyLimit  # noqa: E402
from agent.types import Turn  # noqa: E402
from memory.migrate import upgrade  # noqa: E402
from memory.models import Usage  # noqa: E402
from memory.store import Store, open_store  # noqa: E402
from memory.types import UsageRecord  # noqa: E402
from memory.usage import usage_values  # noqa: E402

BATCH = 5_000
HEAVY_USER = 1


async def _fill(store: Store, args: argparse.Namespace, now: datetime) -> int:
    rng = random.Random(7)
    rows: list[dict[str, Any]] = []
    count = 0
    for day in range(args.days):
        for user in range(HEAVY_USER, args.users + 2):
            for _ in range(args.heavy if user == HEAVY_USER else args.calls):
                at = now - timedelta(days=day, seconds=rng.randint(0, 86_399))
                record = UsageRecord(
                    "openai/gpt-4o-mini",
                    rng.randint(500, 3_000),
                    rng.randint(50, 500),
                    cost=0.001,
                    latency_ms=900.0,
                    user_id=user,
                    created_at=at,
                )
                rows.append(usage_values(record))
        if len(rows) >= BATCH or day == args.days - 1:
            async with store.db.transaction() as conn:
                await conn.execute(insert(Usage), rows)
            count += len(rows)
            rows = []
    return count


async def _time(work: Callable[[], Awaitable[object]], repeat: int) -> dict[str, float]:
    await work()  # warm: statement cache, pages
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await work()
        times.append((time.perf_counter() - start) * 1000)
    cuts = statistics.quantiles(times, n=20)
    return {"p50_ms": statistics.median(times), "p95_ms": cuts[18]}


async def _status_reads(store: Store, now: datetime, repeat: int, label: str) -> dict[str, Any]:
    day, month = now - timedelta(days=1), now - timedelta(days=30)
    return {
        f"status_24h_{label}": await _time(lambda: store.usage.totals(since=day), repeat),
        f"status_30d_{label}": await _time(lambda: store.usage.totals(since=month), repeat),
        f"status_top_{label}": await _time(lambda: store.usage.top_users(since=month), repeat),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="omni-usage-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'omni.db'}"
        await asyncio.to_thread(upgrade, url)
        async with open_store(url) as store:
            started = time.perf_counter()
            rows = await _fill(store, args, now)
            fill_s = time.perf_counter() - started
            limit = DailyLimit(store.usage, default=10**9, clock=lambda: now)
            typical, heavy = Turn("tg:2", "hi", user_id=2), Turn("tg:1", "hi", user_id=HEAVY_USER)

            async def usage_reads() -> None:
                await store.usage.totals(2, since=now - timedelta(days=1))
                await store.usage.totals(2, since=now - timedelta(days=30))
                await limit.allowance(2, is_admin=False)

            out: dict[str, Any] = {
                "rows": rows,
                "fill_s": fill_s,
                "check_typical": await _time(lambda: limit.check(typical), args.repeat),
                "check_heavy": await _time(lambda: limit.check(heavy), args.repeat),
                "usage_command": await _time(usage_reads, args.repeat),
                **await _status_reads(store, now, args.repeat // 10, "indexed"),
            }
            async with store.db.transaction() as conn:
                await conn.execute(text("DROP INDEX ix_usage_created_at"))
            out.update(await _status_reads(store, now, args.repeat // 10, "unindexed"))
            return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100, help="typical users (default 100)")
    parser.add_argument("--days", type=int, default=180, help="days of history (default 180)")
    parser.add_argument("--calls", type=int, default=20, help="a typical user's calls a day (20)")
    parser.add_argument("--heavy", type=int, default=400, help="the heavy user's calls a day (400)")
    parser.add_argument("--repeat", type=int, default=2_000, help="timed runs of each check (2000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    out = asyncio.run(run(args))
    print(f"{out['rows']:,} usage rows ({args.days} days), filled in {out['fill_s']:.1f} s")
    for key, label in [
        ("check_typical", f"limit check, a user with {args.calls} calls a day"),
        ("check_heavy", f"limit check, a user with {args.heavy} calls a day"),
        ("usage_command", "/usage reads (24 h, 30 days, today's allowance)"),
        *[
            (f"status_{part}_{label}", f"/status, {what}, {index} ix_usage_created_at")
            for label, index in (("indexed", "with"), ("unindexed", "without"))
            for part, what in (("24h", "everyone's 24 h"), ("30d", "everyone's 30 days"), ("top", "top 5"))
        ],
    ]:
        print(f"{label}: p50 {out[key]['p50_ms']:.3f} ms, p95 {out[key]['p95_ms']:.3f} ms")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
