"""Phase 1 of recall made hybrid: lexical (BM25) candidates fused with vector neighbours.

With embeddings on (``store.vectors`` attached), the question is embedded, the owner's ``k1``
nearest episodes join the lexical candidates, and each candidate gets one relevance in [0, 1]:

- ``convex`` (the default): ``w * bm25 / max bm25 + (1 - w) * cosine / max cosine``, w = 0.5.
  Both are scaled by the best candidate's, from their natural floor 0 (no matching term;
  unrelated texts' cosine), negative cosines counting 0. Every candidate's cosine is exact (the
  owner's whole matrix is in memory); a vector-only candidate's BM25 counts as 0.
- ``minmax``: the same with cosine min-max scaled over the candidates (the worst gets 0).
- ``rrf``: reciprocal rank fusion, ``sum 1 / (60 + rank)`` over both rankings, scaled by its
  maximum ``2 / 61``.

Picked by measurement (bench/recall.py --embeddings minilm, bench/data/omni_recall.json, k1 20):
convex 0.580 / 0.786 / 0.943 evidence recall@5/10/20, minmax the same, rrf 0.502 / 0.750 / 0.771.
Without embeddings, or when the question cannot be embedded in time, the lexical candidates
pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from sqlalchemy import bindparam, select

from memory.db import Database
from memory.episodes import VIEW_COLUMNS, view_of
from memory.models import Episode
from memory.types import EpisodeView

if TYPE_CHECKING:
    from memory.store import Store

Fusion = Literal["convex", "minmax", "rrf"]
FUSION: Fusion = "convex"
LEXICAL_WEIGHT = 0.5  # equal weights: not tuned on our data
RRF_K = 60  # the constant of Cormack et al. (2009)
# A candidate that only the vectors found must be at least this similar to the question: any
# two texts are somewhat similar, so without a floor an unrelated question ("what is 17 times
# 23?") would still recall the owner's nearest turns. Measured with MiniLM on
# bench/data/omni_recall.json: five unrelated questions' nearest turn in a conversation has cosine
# p50 0.22, p90 0.31 (and a longer memory only raises the maximum), while evidence recall@5 / @10
# / @20 goes 0.622 / 0.802 / 0.932 without a floor, 0.611 / 0.786 / 0.885 at 0.25, 0.606 / 0.781 /
# 0.854 at 0.3. 0.3 keeps nine unrelated questions in ten from adding anything for 0.016 of
# recall@5 (what the prompt gets). Lexical candidates keep their cosine, however low.
COSINE_FLOOR = 0.3

_VIEWS = select(*VIEW_COLUMNS).where(
    Episode.owner_key == bindparam("owner"), Episode.id.in_(bindparam("ids", expanding=True))
)


async def fuse_vectors(
    store_or_db: Store | Database,
    owner: str,
    query: str,
    lexical: Sequence[tuple[EpisodeView, float]],
    k1: int,
    exclude_session_id: int | None = None,
    exclude_ids: Collection[int] = (),
    *,
    window_start: int | None = None,
    fusion: Fusion | None = None,
) -> list[tuple[EpisodeView, float]]:
    """The top ``k1`` of ``lexical`` (episode, BM25 score: higher is better) and the question's
    vector neighbours, by fused relevance; ``lexical`` as it is when vectors are off."""
    if isinstance(store_or_db, Database) or not store_or_db.vectors.enabled:
        return list(lexical)
    vectors, db = store_or_db.vectors, store_or_db.db
    question = await vectors.embed_query(query)
    if question is None:
        return list(lexical)
    matrix = await vectors.matrix(owner, len(question))
    # The matrix knows sessions, not messages: with a window start, that session's turns are
    # judged below, once their views (and message ids) are read.
    top = matrix.top(question, k1, None if window_start is not None else exclude_session_id, exclude_ids)
    cosine = {e: c for e, c in top if c >= COSINE_FLOOR}
    views = {view.id: view for view, _ in lexical}
    cosine.update(matrix.similarity(question, [e for e in views if e not in cosine]))
    missing = [e for e in cosine if e not in views]
    if missing:
        async with db.connection() as conn:
            rows = (await conn.execute(_VIEWS, {"owner": owner, "ids": missing})).all()
        views.update(
            (row[0], view)
            for row in rows
            if not in_window(view := view_of(row), exclude_session_id, window_start)
        )
        if len(rows) < len(missing):  # forgotten by another process (`omni mcp`): re-read later
            vectors.drop(owner)
    bm25 = {view.id: score for view, score in lexical}
    fused = fuse(bm25, {e: c for e, c in cosine.items() if e in views}, fusion or FUSION)
    best = sorted(fused.items(), key=lambda item: (-item[1], -item[0]))[:k1]
    return [(views[e], score) for e, score in best]


def in_window(view: EpisodeView, session_id: int | None, window_start: int | None) -> bool:
    """Whether ``view`` is a turn of the session ``session_id`` that its prompt window holds
    (from the message ``window_start`` on; the whole session when that is None)."""
    if session_id is None or view.session_id != session_id:
        return False
    message_id = view.meta.get("message_id")
    return window_start is None or not isinstance(message_id, int) or message_id >= window_start


def fuse(bm25: Mapping[int, float], cosine: Mapping[int, float], fusion: Fusion) -> dict[int, float]:
    """One relevance in [0, 1] per episode from its BM25 score and its cosine similarity."""
    ids = bm25.keys() | cosine.keys()
    if fusion == "rrf":
        scores = dict.fromkeys(ids, 0.0)
        for ranking in (bm25, cosine):
            for rank, eid in enumerate(sorted(ranking, key=lambda e: -ranking[e]), start=1):
                scores[eid] += 1.0 / (RRF_K + rank)
        return {e: s / (2.0 / (RRF_K + 1)) for e, s in scores.items()}
    top_bm25 = max(bm25.values(), default=0.0)
    high = max(cosine.values(), default=0.0)
    low = min(cosine.values(), default=0.0) if fusion == "minmax" else 0.0
    out = {}
    for eid in ids:
        lexical = bm25.get(eid, 0.0) / top_bm25 if top_bm25 > 0 else 0.0
        semantic = 0.0
        if eid in cosine and high > low:
            semantic = max(cosine[eid] - low, 0.0) / (high - low)
        elif eid in cosine:  # one candidate, or all alike: no spread, so only the sign counts
            semantic = 1.0 if cosine[eid] > 0 else 0.0
        out[eid] = LEXICAL_WEIGHT * lexical + (1 - LEXICAL_WEIGHT) * semantic
    return out
