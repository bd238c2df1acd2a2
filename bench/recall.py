"""Evidence recall of omni's episodic memory on long multi-session conversations, beside BM25.

    python bench/recall.py --dataset FILE [--k 10] [--json] [--misses] [--database-url URL | --postgres]

Each conversation's turns become the episodes of one owner (``bench:<conversation id>``) in a
fresh SQLite store migrated to head (or an empty PostgreSQL database: ``--database-url``, or
``--postgres`` for a throwaway one on the test server, bench/_postgres.py), through
``store.episodes.add_many`` (one real session per dataset session, the turn's time, speaker and
``meta={"turn_id": ...}``). Every question is then asked through ``store.recall`` (the two-phase
recall the agent uses, no token budget) and the recalled episodes are mapped back to turn ids.
Evidence recall@k is the mean over questions of |evidence ∩ top k turn ids| / |evidence|,
per category and overall.

One recall of depth max(k, 20) is made per question; recall@5 and @10 are its prefixes (phase 2
keeps the best k2 in score order, so a shallower recall is the deeper one's prefix).

The baseline is plain FTS5 BM25 over single turns: the same store's full-text index, its text
column alone, queried with a naive OR of the question's words (no stop words dropped, no
neighbouring turns, no utility). On PostgreSQL it is the same over the store's own index: stock
``ts_rank`` of the ``search`` column's text lexemes (weight A) alone.

The dataset format is in ../shared/CONTRACT.md; bench/data/omni_recall.json is the team's own.
With ``--json`` the last line is one JSON object (the contract's keys, plus ``at_k`` and
``baseline``).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _postgres  # noqa: E402
from memory._url import describe, sqlite_path  # noqa: E402
from memory.migrate import upgrade  # noqa: E402
from memory.recall import two_phase_recall  # noqa: E402
from memory.store import Store, open_store  # noqa: E402
from memory.types import NewEpisode  # noqa: E402

TABLE_KS = (5, 10, 20)
PREPARE: Callable[[Store], Awaitable[float]] | None = None  # --embeddings (bench/_embeddings.py)
DEFAULT_K1 = int(inspect.signature(two_phase_recall).parameters["k1"].default)
_WORD = re.compile(r"\w+")


@dataclass
class Pass:
    """One system's answers: the turn ids it recalled for each question, best first."""

    name: str
    got: list[list[str]] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)


def _fail(message: str) -> None:
    raise SystemExit(f"recall bench: {message}")


def load(path: Path) -> dict[str, Any]:
    """The dataset, checked: unique turn ids per conversation, evidence that exists."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    question_ids: set[str] = set()
    for conv in data.get("conversations", []):
        ids = [str(t["id"]) for t in conv["turns"]]
        if len(ids) != len(set(ids)):
            _fail(f"conversation {conv['id']}: turn ids repeat")
        for q in conv.get("questions", []):
            if q["id"] in question_ids:
                _fail(f"question id {q['id']} repeats")
            question_ids.add(q["id"])
            unknown = set(map(str, q.get("evidence", []))) - set(ids)
            if unknown:
                _fail(f"question {q['id']}: evidence {sorted(unknown)} is not a turn of {conv['id']}")
    return data


def anonymous(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with every speaker but the assistant called "user": the bot knows no names, so
    a question that names a person must find the turns by what they say."""
    convs = [
        {
            **conv,
            "turns": [
                {**t, "speaker": "assistant" if t.get("speaker") == "assistant" else "user"}
                for t in conv["turns"]
            ],
        }
        for conv in data.get("conversations", [])
    ]
    return {**data, "conversations": convs}


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def owner_of(conv: dict[str, Any]) -> str:
    return f"bench:{conv['id']}"


async def ingest(store: Store, conv: dict[str, Any]) -> float:
    """Store the conversation's turns as its owner's episodes; seconds spent in ``add_many``."""
    owner = owner_of(conv)
    # Real sessions (an episode's session is a foreign key), opened as /new would, untimed.
    sessions: dict[Any, int] = {}
    for turn in conv["turns"]:
        number = turn.get("session", 1)
        if number not in sessions:
            conversations = store.conversations
            ref = await (conversations.new_session(owner) if sessions else conversations.current(owner))
            sessions[number] = ref.session_id
    items = [
        NewEpisode(
            text=turn["text"],
            speaker=str(turn.get("speaker") or "user"),
            session_id=sessions[turn.get("session", 1)],
            created_at=_when(turn.get("time")),
            meta={"turn_id": str(turn["id"])},
        )
        for turn in conv["turns"]
    ]
    started = time.perf_counter()
    await store.episodes.add_many(owner, items)
    return time.perf_counter() - started


async def ask_omni(
    store: Store, owner: str, question: str, depth: int, now: datetime | None
) -> tuple[list[str], float]:
    """Omni's recall, asked just after the conversation's last turn (``now``: what relative
    dates such as "last spring" are read against)."""
    extra = {"k1": depth} if depth > DEFAULT_K1 else {}
    started = time.perf_counter()
    recalled = await store.recall(owner, question, k2=depth, token_budget=None, now=now, **extra)
    ms = (time.perf_counter() - started) * 1000
    return [str(r.episode.meta.get("turn_id")) for r in recalled], ms


class Bm25Baseline:
    """Plain FTS5 BM25 over single turns on the store's own index (its ``text`` column only)."""

    name = "bm25"
    label = "fts5 bm25 over single turns, naive OR query"

    def __init__(self, db_path: Path) -> None:
        self.conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        columns = [row[1] for row in self.conn.execute("PRAGMA table_info(episodes_fts)")]
        if "text" not in columns:
            _fail(f"episodes_fts has no text column ({columns})")
        weights = ", ".join("1.0" if c == "text" else "0.0" for c in columns)
        self.sql = (
            "SELECT e.meta FROM episodes_fts JOIN episodes AS e ON e.id = episodes_fts.rowid "
            "WHERE episodes_fts MATCH ? AND e.owner_key = ? "
            f"ORDER BY bm25(episodes_fts, {weights}) LIMIT ?"
        )

    async def ask(self, owner: str, question: str, depth: int) -> tuple[list[str], float]:
        started = time.perf_counter()
        words = dict.fromkeys(w.lower() for w in _WORD.findall(question))
        ids: list[str] = []
        if words:
            match = "text : (" + " OR ".join('"' + w.replace('"', '""') + '"' for w in words) + ")"
            for (meta,) in self.conn.execute(self.sql, (match, owner, depth)):
                ids.append(str(json.loads(meta or "{}").get("turn_id")))
        return ids, (time.perf_counter() - started) * 1000

    def close(self) -> None:
        self.conn.close()


class TsRankBaseline:
    """Plain ``ts_rank`` over single turns on PostgreSQL's index: the ``search`` column's text
    lexemes (weight A) alone, stock normalisation, a naive OR of the question's words."""

    name = "ts_rank"
    label = "postgresql ts_rank over single turns, naive OR query"
    _SQL = text(
        "SELECT e.meta FROM episodes AS e, to_tsquery('english', :query) AS query "
        "WHERE e.owner_key = :owner AND e.search @@ query "
        "ORDER BY ts_rank('{0, 0, 0, 1}', e.search, query) DESC, e.id LIMIT :depth"
    ).columns(meta=JSON)

    def __init__(self, store: Store) -> None:
        self.store = store

    async def ask(self, owner: str, question: str, depth: int) -> tuple[list[str], float]:
        started = time.perf_counter()
        # \w+ words (split at "_", which would join two lexemes) are plain tsquery operands.
        words = dict.fromkeys(w for w in re.split(r"\W|_", question.lower()) if w)
        ids: list[str] = []
        if words:
            params = {"query": " | ".join(f"{w}:A" for w in words), "owner": owner, "depth": depth}
            async with self.store.db.connection() as conn:
                for (meta,) in (await conn.execute(self._SQL, params)).all():
                    ids.append(str((meta or {}).get("turn_id")))
        return ids, (time.perf_counter() - started) * 1000

    def close(self) -> None:
        pass


BASELINES = {b.name: b.label for b in (Bm25Baseline, TsRankBaseline)}


def recall_at(evidence: list[str], got: list[str], k: int) -> float:
    wanted = set(evidence)
    return len(wanted & set(got[:k])) / len(wanted)


def score(questions: list[dict[str, Any]], run: Pass, k: int) -> tuple[float, dict[str, float]]:
    """Overall and per-category evidence recall@k (categories in the dataset's order)."""
    per: dict[str, list[float]] = {}
    every = []
    for q, got in zip(questions, run.got, strict=True):
        value = recall_at(q["evidence"], got, k)
        per.setdefault(q["category"], []).append(value)
        every.append(value)
    return statistics.fmean(every), {c: statistics.fmean(v) for c, v in per.items()}


def percentile(values: list[float], p: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


async def measure(
    data: dict[str, Any], url: str, depth: int
) -> tuple[list[dict[str, Any]], Pass, Pass, float]:
    """Ingest everything, then ask every question of omni's recall and of the baseline."""
    questions: list[dict[str, Any]] = []
    omni = Pass("omni")
    ingest_s = 0.0
    async with open_store(url) as store:
        if await store.episodes.count():  # its owners' turns would mix with the dataset's
            _fail(f"the database {describe(url)} already holds episodes: give an empty one")
        for conv in data["conversations"]:
            ingest_s += await ingest(store, conv)
        if PREPARE is not None:  # --embeddings: every episode embedded before any question
            print(f"embedded every turn in {await PREPARE(store):.1f} s", file=sys.stderr)
        for conv in data["conversations"]:
            for q in conv.get("questions", []):
                if not q.get("evidence"):
                    continue  # nothing to find: not scored
                last = _when(conv["turns"][-1].get("time")) if conv["turns"] else None
                got, ms = await ask_omni(store, owner_of(conv), q["question"], depth, last)
                questions.append({**q, "evidence": [str(e) for e in q["evidence"]], "conversation": conv})
                omni.got.append(got)
                omni.ms.append(ms)
        db_path = sqlite_path(url)
        baseline = Bm25Baseline(db_path) if db_path else TsRankBaseline(store)
        bm25 = Pass(baseline.name)
        try:
            for q in questions:
                got, ms = await baseline.ask(owner_of(q["conversation"]), q["question"], depth)
                bm25.got.append(got)
                bm25.ms.append(ms)
        finally:
            baseline.close()
    return questions, omni, bm25, ingest_s


def _summary(questions: list[dict[str, Any]], run: Pass, ks: list[int]) -> dict[str, Any]:
    at_k = {}
    for k in ks:
        overall, by_category = score(questions, run, k)
        at_k[str(k)] = {"recall": overall, "by_category": by_category}
    return {"at_k": at_k, "recall_ms_p50": percentile(run.ms, 50), "recall_ms_p95": percentile(run.ms, 95)}


def _print_misses(questions: list[dict[str, Any]], run: Pass, k: int) -> None:
    print(f"\n{run.name}: questions with evidence missing from the top {k}")
    for q, got in zip(questions, run.got, strict=True):
        value = recall_at(q["evidence"], got, k)
        if value == 1.0:
            continue
        texts = {str(t["id"]): t for t in q["conversation"]["turns"]}
        print(f"  {q['id']} [{q['category']}] {value:.2f}  {q['question']}")
        for tid in q["evidence"]:
            if tid not in got[:k]:
                rank = got.index(tid) + 1 if tid in got else None
                where = f"rank {rank}" if rank else "not recalled"
                turn = texts[tid]
                print(f"      missed {tid} ({where}) {turn['speaker']}: {turn['text'][:90]}")
        if got:
            top = texts.get(got[0])
            print(f"      top    {got[0]} {top['speaker'] + ': ' + top['text'][:90] if top else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="a dataset in the contract's format")
    parser.add_argument("--k", type=int, default=10, help="the k of the headline figures (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--misses", action="store_true", help="list the questions not fully recalled at k")
    parser.add_argument("--embeddings", choices=["hashed", "minilm"], help="hybrid, bench/_embeddings.py")
    parser.add_argument("--minilm", type=Path, help="all-MiniLM-L6-v2's folder, for --embeddings minilm")
    parser.add_argument("--fusion", choices=["convex", "minmax", "rrf"], help="memory/hybrid.py's fusion")
    parser.add_argument(
        "--anonymous-speakers",
        action="store_true",
        help='speakers renamed "user" (the assistant stays "assistant"), as the bot stores them',
    )
    parser.add_argument(
        "--no-feedback", action="store_true", help="without pseudo-relevance feedback (memory/expansion.py)"
    )
    _postgres.add_arguments(parser)
    args = parser.parse_args()
    if args.no_feedback:
        from memory import expansion

        expansion.FEEDBACK_TERMS = 0
    if args.embeddings:
        global PREPARE
        from bench import _embeddings
        from memory import hybrid

        PREPARE = partial(_embeddings.prepare, embed=_embeddings.embedder(args.embeddings, args.minilm))
        hybrid.FUSION = args.fusion or hybrid.FUSION
    if args.k < 1:
        _fail("--k must be at least 1")
    data = load(args.dataset)
    if args.anonymous_speakers:
        data = anonymous(data)
    ks = sorted({*TABLE_KS, args.k})
    convs = data.get("conversations", [])
    turns = sum(len(c["turns"]) for c in convs)

    with (
        tempfile.TemporaryDirectory(prefix="omni-bench-recall-") as tmp,
        _postgres.chosen(args, f"sqlite+aiosqlite:///{Path(tmp) / 'recall.db'}") as url,
    ):
        upgrade(url)
        questions, omni, bm25, ingest_s = asyncio.run(measure(data, url, max(ks)))
    database = "sqlite" if sqlite_path(url) else make_url(url).get_backend_name()
    if not questions:
        _fail("the dataset has no question with evidence")

    counts: dict[str, int] = {}
    for q in questions:
        counts[q["category"]] = counts.get(q["category"], 0) + 1
    ours, base = _summary(questions, omni, ks), _summary(questions, bm25, ks)
    turns_per_s = turns / ingest_s if ingest_s > 0 else float("inf")

    categories = list(counts)
    print(
        f"dataset {data.get('name', args.dataset.name)}: {len(convs)} conversations, {turns} turns, "
        f"{len(questions)} questions ({', '.join(f'{c} {n}' for c, n in counts.items())})"
        + ("" if database == "sqlite" else f", on {database}")
    )
    print(f"ingest: {turns} turns in {ingest_s * 1000:.1f} ms, {turns_per_s:,.0f} turns/s")
    print(
        f"recall latency: omni p50 {ours['recall_ms_p50']:.2f} ms, p95 {ours['recall_ms_p95']:.2f} ms | "
        f"{bm25.name} baseline p50 {base['recall_ms_p50']:.2f} ms, p95 {base['recall_ms_p95']:.2f} ms"
    )
    print()
    print(f"{'evidence recall@k':<20}{'k':>3}" + "".join(f"{c:>12}" for c in categories) + f"{'overall':>10}")
    for name, summary in (("omni", ours), (f"{bm25.name} baseline", base)):
        for k in ks:
            row = summary["at_k"][str(k)]
            cells = "".join(f"{row['by_category'][c]:>12.3f}" for c in categories)
            print(f"{name:<20}{k:>3}{cells}{row['recall']:>10.3f}")
    headline, baseline_headline = ours["at_k"][str(args.k)], base["at_k"][str(args.k)]
    gain = headline["recall"] - baseline_headline["recall"]
    print(
        f"\nrecall@{args.k}: omni {headline['recall']:.3f}, "
        f"{bm25.name} baseline {baseline_headline['recall']:.3f} ({gain:+.3f})"
    )
    if args.misses:
        _print_misses(questions, omni, args.k)

    if args.json:
        out = {
            "k": args.k,
            "recall": headline["recall"],
            "by_category": headline["by_category"],
            "questions": len(questions),
            "ingest_turns_per_s": turns_per_s,
            "recall_ms_p50": ours["recall_ms_p50"],
            "recall_ms_p95": ours["recall_ms_p95"],
            "dataset": data.get("name", args.dataset.name),
            "database": database,
            "conversations": len(convs),
            "turns": turns,
            "at_k": ours["at_k"],
            "baseline": {"name": BASELINES[bm25.name], **base},
        }
        print(json.dumps(out))


if __name__ == "__main__":
    main()
