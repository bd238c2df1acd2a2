"""Phase 1 of recall on PostgreSQL: full-text search in place of SQLite's FTS5.

The same method as :mod:`memory.recall` with PostgreSQL's parts. Each episode has a generated
``search`` tsvector (migrations/versions/0002): its text at weight A, its neighbouring turns
at B, its speaker at D; ``ts_rank`` weighs them 1 : ``CONTEXT_WEIGHT`` : ``SPEAKER_WEIGHT`` as
BM25's column weights do on SQLite, normalised by the episode's length (BM25 does that too).
The question's terms are ORed (ranking, not filtering); only the names it writes capitalised
may match a speaker. The date boost, the current session's window and pseudo-relevance
feedback are the same rules as on SQLite.

Each term is a clause parsed with the configuration its part of ``search`` was indexed with:
``english`` for text and context (``word:AB``), ``simple`` for a speaker (``name:D``), so a
name the english stemmer changes ("Jonas" -> "jona", "James" -> "jame") still finds its turns.

As on SQLite, clauses that most of the owner's episodes match are left out (:func:`affordable`):
ranking is what costs, ~3 us a row, and a word in half of a 100,000-episode memory would rank
50,000 rows while its weight in the ranking is small. SQLite counts each clause's rows exactly
(FTS5 stops counting at the budget); a GIN index cannot stop early, and counting a common
word's rows costs as much as ranking them, so here the count is the planner's own estimate:
ANALYZE's share of episodes that hold the lexeme, times the owner's share of episodes
(:data:`_ESTIMATES`). Where there are no statistics yet (a new, small database) every clause
is kept, as a small owner keeps them all on SQLite. When even the rarest clause is past the
budget, only its newest matches are ranked (:meth:`PostgresPhaseOne.run` says why).

The owner's matches come from one GIN index over ``(owner_key, search)`` (migrations/versions/
0006), which intersects the owner's rows with the words' inside the index, as the owner token
does in SQLite's FTS5 index.

Terms are ``\\w+`` words (:func:`memory.recall.query_terms`) put in the tsquery as literals,
so nothing a user writes is read as tsquery syntax.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Connection, DateTime, Float, Integer, String, Text, text
from sqlalchemy.sql.selectable import TextualSelect

from memory.episodes import view_of
from memory.expansion import feedback_terms, mix
from memory.timeframe import MAX_WINDOWS
from memory.types import EpisodeView

# ts_rank's weights are given as {D, C, B, A}: speaker, unused, context, text.
_WEIGHTS = "'{{{speaker}, 0, {context}, 1}}'"
_IN_PERIOD = " OR ".join(f"(e.created_at >= :w{i}s AND e.created_at < :w{i}e)" for i in range(MAX_WINDOWS))
TEXT, SPEAKER = "english", "simple"  # the configurations of migrations/versions/0002's _PG_SEARCH
_LABELS = {TEXT: "AB", SPEAKER: "D"}
_QUERIES = {  # the tsquery of the clauses kept, by which configurations they use
    (TEXT,): f"to_tsquery('{TEXT}', :text_query)",
    (SPEAKER,): f"to_tsquery('{SPEAKER}', :speaker_query)",
    (TEXT, SPEAKER): f"to_tsquery('{TEXT}', :text_query) || to_tsquery('{SPEAKER}', :speaker_query)",
}


@dataclass(frozen=True, slots=True)
class Clause:
    """One word, matched in the parts of ``search`` that ``config`` indexed."""

    word: str
    config: str  # TEXT or SPEAKER

    @property
    def operand(self) -> str:
        return f"{self.word}:{_LABELS[self.config]}"


def clauses(terms: Sequence[str], names: Collection[str] = ()) -> list[Clause]:
    """A text clause for each of ``terms`` (quoted as FTS5 quotes them), and a speaker clause
    for those in ``names``; in order, each once."""
    out: dict[Clause, None] = {}
    for quoted in terms:
        # query_terms' words are \w+; an underscore would join two lexemes in one operand.
        for word in quoted.strip('"').replace('""', "").split("_"):
            if word:
                out[Clause(word, TEXT)] = None
                if quoted in names:
                    out[Clause(word, SPEAKER)] = None
    return list(out)


def tsquery(clauses: Sequence[Clause], config: str) -> str:
    """A ``to_tsquery`` input ORing the operands of ``clauses`` parsed with ``config``."""
    return " | ".join(c.operand for c in clauses if c.config == config)


# How many of the owner's episodes each clause matches, as the planner estimates a selection
# (selfuncs.c): the share of rows holding the clause's lexeme (ANALYZE's most common elements
# of ``search``; a lexeme not among them, half the rarest one's, as tsquery selectivity takes
# it), times the owner's share of rows (``owner_key``'s most common values, else an even split
# of the rest among the other owners), times the rows. A clause whose word has no lexeme (a
# stop word) matches nothing: 0. No row at all when ANALYZE has not seen the table yet.
_ESTIMATES = text(
    """
    WITH clause AS (
        SELECT c.n, tsvector_to_array(to_tsvector(CAST(c.config AS regconfig), c.word)) AS lexemes
        FROM unnest(CAST(:words AS text[]), CAST(:configs AS text[])) WITH ORDINALITY AS c(word, config, n)
    ), lexeme AS (
        SELECT CAST(CAST(s.most_common_elems AS text) AS text[]) AS elems, s.most_common_elem_freqs AS freqs
        FROM pg_stats AS s
        WHERE s.schemaname = current_schema() AND s.tablename = 'episodes' AND s.attname = 'search'
        AND s.most_common_elems IS NOT NULL
    ), owner AS (
        SELECT t.reltuples * coalesce(
            o.most_common_freqs[array_position(CAST(CAST(o.most_common_vals AS text) AS text[]), :owner)],
            (1 - o.null_frac - coalesce((SELECT sum(f) FROM unnest(o.most_common_freqs) AS f), 0))
            / greatest(
                CASE WHEN o.n_distinct >= 0 THEN o.n_distinct ELSE -o.n_distinct * t.reltuples END
                - coalesce(cardinality(o.most_common_freqs), 0),
                1
            )
        ) AS rows
        FROM pg_stats AS o, pg_class AS t
        WHERE o.schemaname = current_schema() AND o.tablename = 'episodes' AND o.attname = 'owner_key'
        AND t.oid = CAST('episodes' AS regclass) AND t.reltuples > 0
    )
    SELECT c.n, owner.rows * coalesce((
        SELECT max(coalesce(l.freqs[array_position(l.elems, x)], l.freqs[cardinality(l.elems) + 1] / 2))
        FROM unnest(c.lexemes) AS x
    ), 0) AS rows
    FROM clause AS c, lexeme AS l, owner
    ORDER BY c.n
    """
).columns(n=Integer, rows=Float)


def estimated_rows(conn: Connection, owner: str, found: Sequence[Clause]) -> list[float] | None:
    """How many of ``owner``'s episodes each of ``found`` matches (estimated); None without
    statistics."""
    params = {"words": [c.word for c in found], "configs": [c.config for c in found], "owner": owner}
    rows = conn.execute(_ESTIMATES, params).all()
    if len(rows) != len(found):
        return None
    return [max(float(row.rows), 0.0) for row in rows]


def affordable(
    conn: Connection, owner: str, found: Sequence[Clause], budget: float
) -> tuple[list[Clause], float]:
    """The rarest of ``found`` in the owner's episodes, as many as keep the rows to rank within
    ``budget``, at least the rarest one that matches at all; and the rows they are estimated
    to match. Without statistics, all of them (a database ANALYZE has not seen is small)."""
    if not found or budget <= 0:
        return [], 0.0
    estimates = estimated_rows(conn, owner, found)
    if estimates is None:
        return list(found), 0.0
    kept: list[Clause] = []
    spent = 0.0
    for rows, clause in sorted(zip(estimates, found, strict=True), key=lambda pair: pair[0]):
        if rows <= 0:
            continue  # no lexeme: it cannot match
        if kept and spent + rows > budget:
            break
        kept.append(clause)
        spent += rows
    return kept, spent


def _candidates(weights: str, boost: str, query: str, newest: bool) -> TextualSelect:
    # ``newest``: only the newest :score_budget matches are ranked (PostgresPhaseOne.run says
    # when). Without it the subquery is flattened: one scan that ranks every match.
    return text(
        "SELECT e.id, e.owner_key, e.speaker, e.text, e.created_at, e.q, e.recall_count, e.session_id, "
        f"e.meta, ts_rank({weights}, e.search, e.query, 1){boost} AS rank FROM ("
        "SELECT e.id, e.owner_key, e.speaker, e.text, e.created_at, e.q, e.recall_count, e.session_id, "
        "e.meta, e.search, q.query "
        f"FROM episodes AS e, (SELECT {query} AS query) AS q "
        "WHERE e.owner_key = :owner AND e.search @@ q.query "
        "AND (CAST(:session_id AS integer) IS NULL OR e.session_id IS NULL OR e.session_id != :session_id "
        # Of the current session, only turns older than its prompt window (a NULL start: none).
        "OR CAST(e.meta ->> 'message_id' AS bigint) < :window_start)"
        + (" ORDER BY e.created_at DESC, e.id DESC LIMIT :score_budget" if newest else "")
        + ") AS e ORDER BY rank DESC, e.id DESC LIMIT :limit"
    ).columns(
        id=Integer,
        owner_key=String,
        speaker=String,
        text=Text,
        created_at=DateTime(timezone=True),
        q=Float,
        recall_count=Integer,
        session_id=Integer,
        meta=JSON,
        rank=Float,
    )


class PostgresPhaseOne:
    """Phase 1 for one set of weights; ``run`` is handed to :meth:`Database.read`."""

    def __init__(self, context_weight: float, speaker_weight: float, date_boost: float, budget: int) -> None:
        weights = _WEIGHTS.format(speaker=speaker_weight, context=context_weight)
        in_periods = f" * (1.0 + {date_boost} * ({_IN_PERIOD})::int)"
        # Built once (bound parameters): by whether the question names a period, by which
        # configurations the kept clauses use, and by whether only the newest matches are ranked.
        self._statements = {
            (periods, configs, newest): _candidates(weights, in_periods if periods else "", query, newest)
            for periods in (False, True)
            for configs, query in _QUERIES.items()
            for newest in (False, True)
        }
        self._budget = budget

    def _ranked(
        self, conn: Connection, kept: Sequence[Clause], params: dict[str, Any], newest: bool = False
    ) -> list[tuple[EpisodeView, float]]:
        configs = tuple(sorted({c.config for c in kept}, key=(TEXT, SPEAKER).index))
        statement = self._statements["w0s" in params, configs, newest]
        queries = {"text_query": tsquery(kept, TEXT), "speaker_query": tsquery(kept, SPEAKER)}
        rows = conn.execute(statement, {**params, **queries, "score_budget": self._budget}).all()
        return [(view_of(row), float(row.rank)) for row in rows if row.rank > 0]

    def run(
        self,
        conn: Connection,
        question: str,
        terms: list[str],
        names: Collection[str],
        stop_words: frozenset[str],
        params: dict[str, Any],
    ) -> list[tuple[EpisodeView, float]]:
        owner = params["owner"]
        kept, spent = affordable(conn, owner, clauses(terms, names), self._budget)
        if not kept:
            return []
        # The best plan depends on the words: a rare one is read through the GIN index, a common
        # one's newest matches through the owner's btree. The driver prepares every statement,
        # and after five runs PostgreSQL may switch it to a generic plan, blind to the words
        # (it ranked one common word's 28,000 rows in 65 ms where the btree took 4,
        # bench/memory_scale.py). Planning anew costs ~0.2 ms; LOCAL: until the read ends.
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
        # Even the rarest clause matches more than the budget (the question has only words most
        # of the memory holds): SQLite ranks every match, but here each costs a heap row, and a
        # GIN index yields them in no useful order. Rank the newest ``budget`` instead (the
        # (owner_key, created_at) index reads them newest first and stops there): among turns
        # that share only a word the owner says all the time, ts_rank tells little apart, and
        # recency is what phase 2 breaks ties with.
        first = self._ranked(conn, kept, params, newest=spent > self._budget)
        if len(first) >= params["limit"]:
            return first  # as on SQLite: feedback only when the question's words found too few
        top = [(view.text, score) for view, score in first]
        scored = " ".join(c.word for c in kept if c.config == TEXT)
        # Feedback gets what the first round left of the budget, as on SQLite.
        found = clauses(feedback_terms(question, scored, top, stop_words))
        feedback, _ = affordable(conn, owner, found, self._budget - spent)
        if not feedback:
            return first
        second = self._ranked(conn, feedback, params)
        mixed = mix([(v, v.id, s) for v, s in first], [(v, v.id, s) for v, s in second])
        return mixed[: params["limit"]]
