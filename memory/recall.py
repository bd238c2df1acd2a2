"""Two-phase recall (MemRL): candidates by relevance, then reranked by learned utility.

Phase 1 takes the top ``k1`` of one owner's episodes by FTS5 BM25 over text, speaker and the
neighbouring turn's text (weighted 1 : 0.5 : 0.5), normalised to [0, 1] by the best candidate.
Phase 2 scores ``(1 - lam) * relevance + lam * q`` and keeps the best ``k2`` that fit a token
budget. Candidates far below the best match (``min_relevance``) are dropped, and a query that
matches nothing recalls nothing.

The query is built from the words of any text, never parsed as FTS syntax: each term is quoted,
so quotes, ``*``, ``NEAR(``, ``-``, ``AND``/``OR`` and emoji are just text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, DateTime, Float, Integer, String, Text, bindparam, text, update

from memory.db import Database
from memory.episodes import view_of
from memory.models import Episode
from memory.types import EpisodeView

if TYPE_CHECKING:
    from memory.store import Store

MAX_TERMS = 32
MAX_QUERY_CHARS = 4_000  # of the question read for terms: a pasted 10 kB text needs no more
MIN_RELEVANCE = 0.2  # of the best candidate's score
FTS_WEIGHTS = (1.0, 0.5, 0.5)  # text, speaker, context (the order of episodes_fts's columns)

# Small on purpose: BM25's idf already discounts common words; these only waste query terms.
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves s t d ll m re ve don doesn didn isn
    wasn aren weren won tell remember know please""".split()
)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Recalled:
    episode: EpisodeView
    relevance: float  # normalised [0, 1]
    score: float  # (1 - lam) * relevance + lam * q


def estimate_tokens(text: str) -> int:
    """About four characters a token (agent/llm.py's fallback); memory cannot import the agent's
    tokenizer, so callers that have one pass it as ``tokens``."""
    return len(text) // 4 + 1


def fts_query(question: str) -> str | None:
    """An FTS5 MATCH expression: the question's distinct non-stop-word terms, each quoted,
    joined with OR (ranking, not filtering); None when no term is left."""
    terms: list[str] = []
    for match in _WORD.finditer(question[:MAX_QUERY_CHARS]):
        term = match.group().lower().strip("_")
        if not term or term in STOP_WORDS:
            continue
        quoted = '"' + term.replace('"', '""') + '"'
        if quoted not in terms:
            terms.append(quoted)
            if len(terms) == MAX_TERMS:
                break
    return " OR ".join(terms) or None


# MATCH first, then the owner: FTS5 yields the matching rows and the join reads each one's
# episode by primary key. Built once (bound parameters), typed so rows come back converted.
_CANDIDATES = text(
    "SELECT e.id, e.owner_key, e.speaker, e.text, e.created_at, e.q, e.recall_count, e.session_id, "
    f"e.meta, bm25(episodes_fts, {', '.join(map(str, FTS_WEIGHTS))}) AS rank "
    "FROM episodes_fts JOIN episodes AS e ON e.id = episodes_fts.rowid "
    "WHERE episodes_fts MATCH :query AND e.owner_key = :owner "
    "AND (:session_id IS NULL OR e.session_id IS NULL OR e.session_id != :session_id) "
    "ORDER BY rank LIMIT :limit"
).columns(
    id=Integer,
    owner_key=String,
    speaker=String,
    text=Text,
    created_at=DateTime,
    q=Float,
    recall_count=Integer,
    session_id=Integer,
    meta=JSON,
    rank=Float,
)
_MARK_RECALLED = (
    update(Episode)
    .where(Episode.id.in_(bindparam("ids", expanding=True)))
    .values(recall_count=Episode.recall_count + 1, last_recalled_at=bindparam("now"))
)


async def two_phase_recall(
    store_or_db: Store | Database,
    owner: str,
    query: str,
    *,
    k1: int = 20,
    k2: int = 5,
    lam: float = 0.3,
    token_budget: int | None = 600,
    exclude_session_id: int | None = None,
    exclude_ids: Collection[int] = (),
    min_relevance: float = MIN_RELEVANCE,
    tokens: Callable[[str], int] = estimate_tokens,
) -> list[Recalled]:
    """``owner``'s episodes most worth recalling for ``query``, best first (see the module).

    Episodes of ``exclude_session_id`` (the current session: its window is in the prompt
    already) and ``exclude_ids`` are left out. The returned episodes' ``recall_count`` goes up.
    """
    db = store_or_db if isinstance(store_or_db, Database) else store_or_db.db
    match = fts_query(query)
    if match is None or k1 <= 0 or k2 <= 0 or db.dialect != "sqlite":
        return []  # no full-text index off SQLite yet
    params: dict[str, Any] = {
        "query": match,
        "owner": owner,
        "session_id": exclude_session_id,
        "limit": k1 + len(exclude_ids),
    }
    async with db.connection() as conn:
        rows = (await conn.execute(_CANDIDATES, params)).all()
    candidates = [(view_of(row), -float(row.rank)) for row in rows if row.id not in exclude_ids][:k1]
    best = max((bm for _, bm in candidates), default=0.0)
    if best <= 0.0:
        return []
    scored = []
    for episode, bm in candidates:
        relevance = bm / best
        if relevance >= min_relevance:
            scored.append(Recalled(episode, relevance, (1 - lam) * relevance + lam * episode.q))
    scored.sort(key=lambda r: (-r.score, -r.episode.id))
    kept: list[Recalled] = []
    used = 0
    for recalled in scored:
        cost = tokens(recalled.episode.text) + 8  # its date and speaker in the prompt
        if token_budget is not None and used + cost > token_budget:
            continue  # a long episode makes way for shorter ones that fit
        kept.append(recalled)
        used += cost
        if len(kept) == k2:
            break
    if kept:
        now = datetime.now(UTC).replace(tzinfo=None)
        async with db.transaction() as conn:
            await conn.execute(_MARK_RECALLED, {"ids": [r.episode.id for r in kept], "now": now})
    return kept
