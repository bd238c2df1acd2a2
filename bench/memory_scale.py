"""Episodic memory at scale: one heavy user among many, on one SQLite file (or PostgreSQL).

    python bench/memory_scale.py [--users 1000] [--heavy 100000] [--rows 1000000] [--json]
                                 [--db PATH | --database-url URL | --postgres]

The store is migrated to head in a temporary folder and filled through ``store.episodes.add_many``
(the bench's and imports' path; the agent's stores the same rows one exchange at a time): one
user with ``--heavy`` episodes, one with ``--medium`` (the "10,000 episodes" user of the issue),
and the rest of ``--rows`` spread over the other users; each turn indexed with its neighbours as
the bot does. Text is drawn from a Zipf-distributed vocabulary of
pronounceable made-up words (a few very common, a long tail of rare ones), so every query meets
common terms that match tens of thousands of rows and rare ones that match a few.

Each query is three to eight words: two taken from one of the user's episodes, the rest drawn
from the same Zipf law (what a question looks like: a few specific words among common ones).
Reported: ingest episodes/s, recall latency p50/p95/max through ``store.recall`` (two phases and
the recall-count update), phase 1 alone, the longest the event loop was held while recalls ran
(a ticker task sleeps 1 ms at a time and records its worst overrun: what another chat would
wait), the cost of handing a read to the read thread, and the database size. ``--db PATH``
keeps the filled database there and reuses it on the next run (filling 1M rows takes minutes).

``--database-url URL`` runs on that database instead (reused, like ``--db``, when it holds
episodes already), ``--postgres`` on a throwaway one on the test server (bench/_postgres.py).
On PostgreSQL the filled table is vacuumed and analysed before the recalls, as autovacuum would
soon do after a bulk insert: the planner's statistics, the visibility map and GIN's pending
list are then those of a database in use, not of one a second after the load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _postgres  # noqa: E402
from memory.migrate import upgrade  # noqa: E402
from memory.recall import lexical_candidates  # noqa: E402
from memory.store import Store, open_store  # noqa: E402
from memory.types import NewEpisode  # noqa: E402

VOCABULARY = 50_000
BATCH = 2_000  # episodes per add_many (one transaction)
_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "ch", "sh", "tr", "pl"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]


class Words:
    """A Zipf (s = 1) vocabulary of made-up words: word i is drawn with weight 1 / (i + 1)."""

    def __init__(self, rng: random.Random, size: int) -> None:
        seen: dict[str, None] = {}
        while len(seen) < size:
            syllables = rng.choice((1, 2, 2, 3, 3, 4))
            seen["".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))] = None
        self.words = list(seen)
        self.cum = list(itertools.accumulate(1.0 / (i + 1) for i in range(size)))
        self.rng = rng

    def draw(self, n: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cum, k=n)

    def sentence(self) -> str:
        return " ".join(self.draw(self.rng.randint(6, 30)))


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


async def fill(store: Store, owner: str, count: int, words: Words, start: datetime) -> tuple[int, float]:
    """``count`` episodes of ``owner``, a minute apart, each indexed with the turns before and
    after it (``add_many`` fills the context); (stored, seconds)."""
    seconds = 0.0
    done = 0
    while done < count:
        n = min(BATCH, count - done)
        items = [
            NewEpisode(
                words.sentence(),
                speaker="user" if (done + i) % 2 == 0 else "assistant",
                created_at=start + timedelta(minutes=done + i),
            )
            for i in range(n)
        ]
        started = time.perf_counter()
        await store.episodes.add_many(owner, items)
        seconds += time.perf_counter() - started
        done += n
    return done, seconds


class LoopWatch:
    """The longest the event loop was held while the block ran: a ticker task sleeps 1 ms at a
    time and keeps its worst overrun (the time another chat's task would have waited)."""

    TICK = 0.001

    def __init__(self) -> None:
        self.worst_ms = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.TICK)
            self.worst_ms = max(self.worst_ms, (time.perf_counter() - started - self.TICK) * 1000)

    async def __aenter__(self) -> LoopWatch:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)  # let it start ticking
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def ask(store: Store, owner: str, questions: list[str]) -> dict[str, float]:
    """Recall latency through the agent's path, phase 1 alone, and the longest loop hold."""
    whole: list[float] = []
    phase1: list[float] = []
    async with LoopWatch() as watch:
        for q in questions:
            started = time.perf_counter()
            await store.recall(owner, q)
            whole.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await lexical_candidates(store.db, owner, q, limit=20)
            phase1.append((time.perf_counter() - started) * 1000)
    return {
        "recall_ms_p50": statistics.median(whole),
        "recall_ms_p95": percentile(whole, 95),
        "recall_ms_max": max(whole),
        "phase1_ms_p50": statistics.median(phase1),
        "phase1_ms_max": max(phase1),
        "loop_held_ms_max": watch.worst_ms,
    }


async def hand_off(store: Store, n: int = 500) -> float:
    """p50 ms of a read that does nothing, handed to the read thread and back."""
    await store.db.read(lambda conn: None)  # the thread and its connection exist from here
    took = []
    for _ in range(n):
        started = time.perf_counter()
        await store.db.read(lambda conn: None)
        took.append((time.perf_counter() - started) * 1000)
    return statistics.median(took)


def questions_for(rng: random.Random, words: Words, texts: list[str], n: int) -> list[str]:
    out = []
    for _ in range(n):
        own = rng.choice(texts).split()
        picked = rng.sample(own, min(2, len(own))) + words.draw(rng.randint(1, 6))
        rng.shuffle(picked)
        out.append("What about " + " ".join(picked) + "?")
    return out


async def settle(store: Store) -> None:
    """PostgreSQL only: what autovacuum does soon after a bulk insert, done now."""
    if store.db.dialect == "postgresql":
        async with store.db.engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("VACUUM ANALYZE episodes")


async def run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    rng = random.Random(13)
    words = Words(rng, VOCABULARY)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    heavy, medium = "user:1", "user:2"
    others = max(args.users - 2, 0)
    rest = max(args.rows - args.heavy - args.medium, 0)
    async with open_store(url) as store:
        reuse = await store.episodes.count() > 0
        result: dict[str, Any] = {"users": args.users, "reused": reuse}
        if not reuse:
            heavy_n, heavy_s = await fill(store, heavy, args.heavy, words, start)
            medium_n, medium_s = await fill(store, medium, args.medium, words, start)
            other_n, other_s = 0, 0.0
            for i in range(others):
                share = rest // others + (1 if i < rest % others else 0)
                n, s = await fill(store, f"user:{i + 3}", share, words, start)
                other_n, other_s = other_n + n, other_s + s
            ingest_s = heavy_s + medium_s + other_s
            result["ingest_episodes_per_s"] = (heavy_n + medium_n + other_n) / ingest_s if ingest_s else 0.0
            await settle(store)
        result["episodes"] = await store.episodes.count()
        result["database_bytes"] = await store.database_bytes() or 0
        result["hand_off_ms_p50"] = await hand_off(store)
        for name, owner in (("heavy", heavy), ("medium", medium)):
            page, count = await store.episodes.listing(owner, limit=500)
            qs = questions_for(rng, words, [e.text for e in page], args.questions)
            result[name] = {"episodes": count, **await ask(store, owner, qs)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--heavy", type=int, default=100_000, help="episodes of the heavy user")
    parser.add_argument("--medium", type=int, default=10_000, help="episodes of the second user")
    parser.add_argument("--rows", type=int, default=1_000_000, help="episodes in all")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--db", type=Path, help="keep the filled database here; reuse it if it exists")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    _postgres.add_arguments(parser)
    args = parser.parse_args()
    if args.db and (args.database_url or args.postgres):
        parser.error("--db names an SQLite file: give it, --database-url or --postgres, not two")
    with tempfile.TemporaryDirectory(prefix="omni-bench-scale-") as tmp:
        sqlite_url = f"sqlite+aiosqlite:///{args.db or Path(tmp) / 'scale.db'}"
        with _postgres.chosen(args, sqlite_url) as url:
            upgrade(url)
            out = asyncio.run(run(args, url))
    ingest = "reused" if out["reused"] else f"ingest {out['ingest_episodes_per_s']:,.0f} episodes/s"
    print(
        f"{out['episodes']:,} episodes of {out['users']:,} users: {ingest}, "
        f"database {out['database_bytes'] / 1e6:,.1f} MB; a read handed to the read thread and "
        f"back p50 {out['hand_off_ms_p50']:.3f} ms"
    )
    for name in ("heavy", "medium"):
        r = out[name]
        print(
            f"recall, a user with {r['episodes']:,} episodes: p50 {r['recall_ms_p50']:.2f} ms, "
            f"p95 {r['recall_ms_p95']:.2f} ms, max {r['recall_ms_max']:.2f} ms; phase 1 "
            f"p50 {r['phase1_ms_p50']:.2f} ms, max {r['phase1_ms_max']:.2f} ms; event loop held "
            f"at most {r['loop_held_ms_max']:.2f} ms"
        )
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
