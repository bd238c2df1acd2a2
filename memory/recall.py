"""Two-phase recall (MemRL): candidates by relevance, then reranked by learned utility.

Phase 1 (:func:`lexical_candidates`) takes the top ``k1`` of one owner's episodes by FTS5 BM25
over the episode's text and its neighbouring turns (weighted 1 : ``CONTEXT_WEIGHT``). The
match is ``owner : <token> AND {text context} : (terms)``: FTS5 evaluates AND by seeking in the
owner token's doclist, so its cost follows that owner's episodes, not every owner's
(:func:`owner_token` builds it as the index's trigger does, migrations/versions/0002). Who said
the episode counts at ``SPEAKER_WEIGHT`` (a name matches half of a two-person conversation: at
the text's weight it swamped the text), and a light ``DATE_BOOST`` multiplies BM25 when the
episode falls in a period the question names (memory/timeframe.py). Clauses that most of the
owner's episodes match are left out (:func:`affordable_terms`): scoring is what costs. Relevance
is the score over the best candidate's, in [0, 1].

Phase 2 scores ``(1 - lam) * relevance + lam * q`` and keeps the best ``k2`` that fit a token
budget: the budget, not a threshold, limits what the prompt gets. Only candidates far below the
best (``min_relevance``) are dropped, and a query that matches nothing recalls nothing.

The query is built from the words of any text, never parsed as FTS syntax: each term is quoted,
so quotes, ``*``, ``NEAR(``, ``-``, ``AND``/``OR`` and emoji are just text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Connection, DateTime, Float, Integer, String, Text, text
from sqlalchemy.sql.selectable import TextualSelect

from memory.conversations import estimate_tokens
from memory.db import Database
from memory.episodes import view_of
from memory.expansion import feedback_terms, mix
from memory.hybrid import fuse_vectors
from memory.recall_pg import PostgresPhaseOne
from memory.timeframe import MAX_WINDOWS, windows
from memory.types import EpisodeView
from memory.utility import mark_recalled

if TYPE_CHECKING:
    from memory.store import Store

MAX_TERMS = 32
MAX_QUERY_CHARS = 4_000  # of the question read for terms: a pasted 10 kB text needs no more
MIN_RELEVANCE = 0.05  # of the best candidate's score: only what a near-useless term matched
CONTEXT_WEIGHT = 0.5  # the neighbouring turns count half as much as the episode's own words
SPEAKER_WEIGHT = 0.2  # a named speaker's turns rank below a turn that shares a word, not above
DATE_BOOST = 0.25  # light: the period may be one the turn talks about, not the one it was told in
SCORE_BUDGET = 1_500  # rows phase 1 may score: BM25 costs ~3 us a row, the loop waits meanwhile
_NEVER = "9999"  # an empty period (start >= end as text): unused period slots match nothing
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # the same on PostgreSQL, where periods are timestamps

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


def fts_query(question: str) -> str | None:
    """An FTS5 MATCH expression: the question's distinct non-stop-word terms, each quoted,
    joined with OR (ranking, not filtering); None when no term is left."""
    return " OR ".join(query_terms(question)) or None


def query_terms(question: str) -> list[str]:
    """The question's distinct non-stop-word terms, each quoted for FTS5, at most MAX_TERMS."""
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
    return terms


_NAME = re.compile(r"\b[^\W\d_][\w]*", re.UNICODE)


def names_in(question: str) -> set[str]:
    """The question's capitalised words, quoted as :func:`query_terms` quotes them: who it may
    name as a speaker ("What is Ana's dog called?"). The bot's own speakers ("user",
    "assistant") are never asked about by name; a sentence's first word costs one clause."""
    return {
        '"' + word.lower().replace('"', '""') + '"'
        for word in _NAME.findall(question[:MAX_QUERY_CHARS])
        if word[0].isupper()
    }


def owner_token(owner: str) -> str:
    """The one token that names ``owner`` in the index's ``owner`` column: its UTF-8 bytes in
    hex between ``o`` and ``0`` (the trigger's ``'o' || lower(hex(owner_key)) || '0'``)."""
    return "o" + owner.encode().hex() + "0"


_IN_PERIOD = " OR ".join(f"(e.created_at >= :w{i}s AND e.created_at < :w{i}e)" for i in range(MAX_WINDOWS))


def _candidates(boost: str) -> TextualSelect:
    # The owner filter is in both places: the MATCH makes it fast, the join makes it certain.
    # Built once (bound parameters), typed so rows come back converted.
    return text(
        "SELECT e.id, e.owner_key, e.speaker, e.text, e.created_at, e.q, e.recall_count, e.session_id, "
        f"e.meta, bm25(episodes_fts, 1.0, {CONTEXT_WEIGHT}, {SPEAKER_WEIGHT}, 0.0){boost} AS rank "
        "FROM episodes_fts JOIN episodes AS e ON e.id = episodes_fts.rowid "
        "WHERE episodes_fts MATCH :query AND e.owner_key = :owner "
        "AND (:session_id IS NULL OR e.session_id IS NULL OR e.session_id != :session_id "
        # Of the current session, only turns older than its prompt window (a NULL start: none).
        "OR json_extract(e.meta, '$.message_id') < :window_start) "
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


# Most questions name no period: they skip the boost's test of every row scored (~15 % of it).
_CANDIDATES = _candidates("")
_CANDIDATES_IN_PERIODS = _candidates(f" * (1.0 + {DATE_BOOST} * ({_IN_PERIOD}))")


_POSTGRES = PostgresPhaseOne(CONTEXT_WEIGHT, SPEAKER_WEIGHT, DATE_BOOST, SCORE_BUDGET)


# How many of the owner's episodes hold a term, counted up to a cap: matching is cheap (FTS5
# seeks through the owner token's doclist), scoring is not. One statement counts every clause.
_DOCUMENT_FREQUENCY = "(SELECT count(*) FROM (SELECT 1 FROM episodes_fts WHERE episodes_fts MATCH ? LIMIT ?))"


def affordable_terms(
    conn: Connection,
    owner_match: str,
    terms: Sequence[str],
    *,
    speakers: Collection[str] = (),
    budget: int = SCORE_BUDGET,
) -> tuple[list[str], int]:
    """The rarest of the clauses ``{text context} : term`` and ``speaker : term`` in the owner's
    episodes, as many as keep the rows to score within :data:`SCORE_BUDGET`; at least the
    rarest one that matches at all. Also returns how many rows the kept clauses match.

    A clause left out is one that a large share of the owner's episodes match: its idf, hence
    its weight in BM25, is small, and it would cost the most to score ("user" as a speaker, a
    word the owner says all the time). A small owner keeps every clause.

    Only the terms in ``speakers`` (names the question writes capitalised) get a speaker clause:
    counting one that matches no speaker reads the term's whole list of rows to find none,
    which cost ten times the rest of the counting over a long memory (bench/memory_scale.py)."""
    clauses = [f"{{text context}} : {t}" for t in terms] + [f"speaker : {t}" for t in terms if t in speakers]
    if not clauses or budget <= 0:
        return [], 0
    params: list[str | int] = []
    for clause in clauses:
        params += [f"{owner_match} AND {clause}", budget + 1]
    sql = "SELECT " + ", ".join([_DOCUMENT_FREQUENCY] * len(clauses))
    counts = conn.exec_driver_sql(sql, tuple(params)).one()
    kept: list[str] = []
    spent = 0
    for count, term in sorted(zip(counts, clauses, strict=True)):
        if count == 0:
            continue
        if kept and spent + count > budget:
            break
        kept.append(term)
        spent += count
    return kept, spent


def _stamp(moment: datetime) -> str:
    return moment.isoformat(sep=" ")  # compares as text with SQLAlchemy's stored times


def _ranked(conn: Connection, params: dict[str, Any]) -> list[tuple[EpisodeView, float]]:
    statement = _CANDIDATES_IN_PERIODS if "w0s" in params else _CANDIDATES
    rows = conn.execute(statement, params).all()
    return [(view_of(row), -float(row.rank)) for row in rows if row.rank < 0]


def _phase_one(
    conn: Connection, query: str, owner_match: str, terms: list[str], params: dict[str, Any]
) -> list[tuple[EpisodeView, float]]:
    # Run by Database.read, off the event loop: over a long memory these statements take tens
    # of milliseconds (bench/memory_scale.py), which in place would stall every other chat.
    terms, spent = affordable_terms(conn, owner_match, terms, speakers=names_in(query))
    if not terms:
        return []
    first = _ranked(conn, {**params, "query": f"{owner_match} AND ({' OR '.join(terms)})"})
    # Pseudo-relevance feedback (memory/expansion.py): one more round with the words the best
    # turns share, for the answer told in other words than the question's. Only when the
    # question's own words found fewer candidates than asked for: that is when an answer told
    # in other words is likely missing, and over a long memory the extra round costs as much
    # as the first (bench/memory_scale.py), which a full first round does not need.
    if len(first) >= params["limit"]:
        return first
    top = [(view.text, bm) for view, bm in first]
    scored = " ".join(t for t in terms if t.startswith("{text context}"))
    # Its words come from turns, not from the question: it gets what the first round left of
    # the scoring budget, so a recall never scores more than SCORE_BUDGET rows in all (a long
    # memory's first round spends most of it, a short one's leaves room to refine).
    feedback, _ = affordable_terms(
        conn,
        owner_match,
        feedback_terms(query, scored, top, STOP_WORDS),
        budget=SCORE_BUDGET - spent,
    )
    if not feedback:
        return first
    ranked = _ranked(conn, {**params, "query": f"{owner_match} AND ({' OR '.join(feedback)})"})
    second = [(view, view.id, bm) for view, bm in ranked]
    return mix([(view, view.id, bm) for view, bm in first], second)[: params["limit"]]


async def lexical_candidates(
    db: Database,
    owner: str,
    query: str,
    *,
    limit: int,
    exclude_session_id: int | None = None,
    window_start: int | None = None,
    now: datetime | None = None,
) -> list[tuple[EpisodeView, float]]:
    """Phase 1: up to ``limit`` of ``owner``'s episodes by boosted BM25, best first, each with
    its score (> 0, higher is better; not normalised, so a fusion can weigh it)."""
    terms = query_terms(query)
    if not terms or limit <= 0:
        return []
    sqlite = db.dialect == "sqlite"
    periods = windows(query, now or datetime.now(UTC))
    params: dict[str, Any] = {
        "owner": owner,
        "session_id": exclude_session_id,
        "window_start": window_start,
        "limit": limit,
    }
    for i in range(MAX_WINDOWS if periods else 0):
        if i < len(periods):
            start, end = periods[i] if not sqlite else map(_stamp, periods[i])
        else:  # an empty period
            start, end = (_NEVER, _NEVER) if sqlite else (_EPOCH, _EPOCH)
        params[f"w{i}s"], params[f"w{i}e"] = start, end
    if not sqlite:
        names = names_in(query)
        return await db.read(lambda conn: _POSTGRES.run(conn, query, terms, names, STOP_WORDS, params))
    owner_match = f'owner : "{owner_token(owner)}"'
    return await db.read(lambda conn: _phase_one(conn, query, owner_match, terms, params))


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
    window_start: int | None = None,
    exclude_ids: Collection[int] = (),
    min_relevance: float = MIN_RELEVANCE,
    tokens: Callable[[str], int] = estimate_tokens,
    now: datetime | None = None,
    mark: bool = True,
) -> list[Recalled]:
    """``owner``'s episodes most worth recalling for ``query``, best first (see the module).

    Episodes of ``exclude_session_id`` (the current session: its window is in the prompt
    already) and ``exclude_ids`` are left out; with ``window_start`` (the oldest message id the
    session's prompt window holds), only that session's turns from it on are. The returned
    episodes' ``recall_count`` goes up.
    ``now`` (default: the clock) anchors the question's relative dates ("last spring").
    ``mark=False`` leaves counting the recall to the caller (the agent does it in the answer's
    transaction, through ``Exchange.recalled_ids``: one write fewer per turn).
    """
    db = store_or_db if isinstance(store_or_db, Database) else store_or_db.db
    if k1 <= 0 or k2 <= 0:
        return []
    lexical = await lexical_candidates(
        db,
        owner,
        query,
        limit=k1 + len(exclude_ids),
        exclude_session_id=exclude_session_id,
        window_start=window_start,
        now=now,
    )
    candidates = [(view, bm) for view, bm in lexical if view.id not in exclude_ids][:k1]
    # Hybrid phase 1 (memory/hybrid.py): with embeddings on, vector neighbours are fused in.
    candidates = await fuse_vectors(
        store_or_db, owner, query, candidates, k1, exclude_session_id, exclude_ids, window_start=window_start
    )
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
    if kept and mark:
        async with db.transaction() as conn:
            await mark_recalled(conn, [r.episode.id for r in kept])
    return kept
