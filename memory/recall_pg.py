"""Phase 1 of recall on PostgreSQL: full-text search in place of SQLite's FTS5.

The same method as :mod:`memory.recall` with PostgreSQL's parts. Each episode has a generated
``search`` tsvector (migrations/versions/0002): its text at weight A, its neighbouring turns
at B, its speaker at D; ``ts_rank`` weighs them 1 : ``CONTEXT_WEIGHT`` : ``SPEAKER_WEIGHT`` as
BM25's column weights do on SQLite, normalised by the episode's length (BM25 does that too).
The question's terms are ORed (ranking, not filtering); only the names it writes capitalised
may match a speaker (``word:AB`` keeps the others to text and context). The date boost, the
current session's window and pseudo-relevance feedback are the same rules as on SQLite.

Terms are ``\\w+`` words (:func:`memory.recall.query_terms`) put in the tsquery as literals,
so nothing a user writes is read as tsquery syntax.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import JSON, Connection, DateTime, Float, Integer, String, Text, text

from memory.episodes import view_of
from memory.expansion import feedback_terms, mix
from memory.timeframe import MAX_WINDOWS
from memory.types import EpisodeView

# ts_rank's weights are given as {D, C, B, A}: speaker, unused, context, text.
_WEIGHTS = "'{{{speaker}, 0, {context}, 1}}'"
_IN_PERIOD = " OR ".join(f"(e.created_at >= :w{i}s AND e.created_at < :w{i}e)" for i in range(MAX_WINDOWS))


def tsquery(terms: Sequence[str], names: Collection[str] = ()) -> str:
    """A ``to_tsquery`` input ORing ``terms`` (quoted as FTS5 quotes them), names also as speakers."""
    parts = []
    for quoted in terms:
        # query_terms' words are \w+; an underscore would join two lexemes in one operand.
        for word in quoted.strip('"').replace('""', "").split("_"):
            if word:
                parts.append(f"{word}:{'ABD' if quoted in names else 'AB'}")
    return " | ".join(parts)


def _candidates(weights: str, boost: str) -> Any:
    return text(
        "SELECT e.id, e.owner_key, e.speaker, e.text, e.created_at, e.q, e.recall_count, e.session_id, "
        f"e.meta, ts_rank({weights}, e.search, query, 1){boost} AS rank "
        "FROM episodes AS e, to_tsquery('english', :query) AS query "
        "WHERE e.owner_key = :owner AND e.search @@ query "
        "AND (CAST(:session_id AS integer) IS NULL OR e.session_id IS NULL OR e.session_id != :session_id "
        # Of the current session, only turns older than its prompt window (a NULL start: none).
        "OR CAST(e.meta ->> 'message_id' AS bigint) < :window_start) "
        "ORDER BY rank DESC, e.id DESC LIMIT :limit"
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


def _statements(context_weight: float, speaker_weight: float, date_boost: float) -> tuple[Any, Any]:
    weights = _WEIGHTS.format(speaker=speaker_weight, context=context_weight)
    return _candidates(weights, ""), _candidates(weights, f" * (1.0 + {date_boost} * ({_IN_PERIOD})::int)")


class PostgresPhaseOne:
    """Phase 1 for one set of weights; ``run`` is handed to :meth:`Database.read`."""

    def __init__(self, context_weight: float, speaker_weight: float, date_boost: float) -> None:
        self._plain, self._in_periods = _statements(context_weight, speaker_weight, date_boost)

    def _ranked(self, conn: Connection, params: dict[str, Any]) -> list[tuple[EpisodeView, float]]:
        statement = self._in_periods if "w0s" in params else self._plain
        rows = conn.execute(statement, params).all()
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
        first = self._ranked(conn, {**params, "query": tsquery(terms, names)})
        if len(first) >= params["limit"]:
            return first  # as on SQLite: feedback only when the question's words found too few
        top = [(view.text, score) for view, score in first]
        feedback = feedback_terms(question, " ".join(terms), top, stop_words)
        if not feedback:
            return first
        second = self._ranked(conn, {**params, "query": tsquery(feedback)})
        mixed = mix([(v, v.id, s) for v, s in first], [(v, v.id, s) for v, s in second])
        return mixed[: params["limit"]]
