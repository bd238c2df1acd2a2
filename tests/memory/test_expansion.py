"""Pseudo-relevance feedback (memory/expansion.py) on a real migrated SQLite file: the words it
adds, its cost, hostile text, and an answer told in other words than the question's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event

from memory import Store, expansion
from memory.expansion import feedback_terms, mix
from memory.recall import STOP_WORDS

pytestmark = pytest.mark.anyio

OWNER = "user:7"
HOSTILE = ['"', '""', "*", "NEAR(", "a AND b OR NOT c", "-x", "^start", "col : x", "🐶🐶", "(((", "\x00"]


@pytest.fixture
def fts_statements() -> Iterator[list[str]]:
    """Every full-text statement any engine runs meanwhile."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "MATCH" in statement and "LIMIT :cap" not in statement and "LIMIT ?)" not in statement:
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


def test_feedback_adds_the_top_turns_words_the_question_lacks() -> None:
    top = [
        ("We play in a band called the Harbours", 3.0),
        ("The band plays the Crown with the Harbours on Friday", 2.0),
        ("Nothing in common here at all", 1.0),  # shares no word with the question: not feedback
    ]
    terms = feedback_terms("Which band do I play in?", "band play", top, STOP_WORDS)
    assert terms[0] == '"harbours"'  # in both feedback turns
    assert '"band"' not in terms and '"play"' not in terms and '"plays"' not in terms  # asked already
    assert not {'"nothing"', '"common"'} & set(terms)
    # A turn that holds only a word the first round did not score ("play": too common) is none.
    assert feedback_terms("Which band do I play in?", "band", [("I play cello", 1.0)], STOP_WORDS) == []


def test_no_feedback_without_a_turn_that_shares_a_word(monkeypatch: pytest.MonkeyPatch) -> None:
    assert feedback_terms("Which band?", "band", [("Felix lost a stick", 2.0)], STOP_WORDS) == []
    assert feedback_terms("Which band?", "band", [], STOP_WORDS) == []
    monkeypatch.setattr(expansion, "FEEDBACK_TERMS", 0)
    assert feedback_terms("Which band?", "band", [("band Harbours", 1.0)], STOP_WORDS) == []


def test_mix_adds_the_feedback_round_at_its_weight() -> None:
    mixed = mix([("a", 1, 2.0), ("b", 2, 1.0)], [("b", 2, 4.0), ("c", 3, 1.0)], weight=0.5)
    assert mixed == [("b", 3.0), ("a", 2.0), ("c", 0.5)]


def test_hostile_turns_become_quoted_terms() -> None:
    top = [(" ".join(HOSTILE) + " band " + word, 1.0) for word in ("NEAR", "AND", "OR", 'x"y')]
    terms = feedback_terms("band", "band", top, STOP_WORDS)
    assert terms
    for term in terms:
        assert term.startswith('"') and term.endswith('"') and '"' not in term[1:-1].replace('""', "")


async def test_hostile_text_never_raises_through_recall(store: Store) -> None:
    for text in HOSTILE:
        await store.episodes.add(OWNER, f"band {text} Harbours", speaker="user")
        await store.episodes.add(OWNER, f"the band {text} Harbours again", speaker="user")
    for question in [*HOSTILE, "band " + " ".join(HOSTILE)]:
        await store.recall(OWNER, question, k2=20, token_budget=None)


async def _paraphrase_memory(store: Store) -> int:
    said = [
        "I play bass in a band called the Harbours.",
        "Lovely weather for a walk today.",
        "Our band has a gig at the Crown, the Harbours are headlining!",
        "I made soup with leeks and potatoes.",
        "Work was long, the quarterly report is finally done.",
        "Felix, the Harbours' drummer, lost a stick twice.",
        "My sister is visiting at Easter.",
    ]
    ids = [await store.episodes.add(OWNER, text, speaker="user") for text in said]
    for day in range(20):  # a memory of other things: the names are rare in it
        await store.episodes.add(OWNER, f"Day {day}: groceries, emails and a short run.", speaker="user")
    return ids[5]


async def test_feedback_finds_an_answer_in_other_words(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    answer = await _paraphrase_memory(store)
    question = "Who plays the drums in my band?"
    found = [r.episode.id for r in await store.recall(OWNER, question, k2=10, token_budget=None)]
    assert answer in found
    monkeypatch.setattr(expansion, "FEEDBACK_TERMS", 0)  # plain BM25 rounds: "drums" is not "drummer"
    plain = [r.episode.id for r in await store.recall(OWNER, question, k2=10, token_budget=None)]
    assert answer not in plain


@pytest.mark.sqlite_only
async def test_feedback_costs_one_full_text_statement_more(
    store: Store, monkeypatch: pytest.MonkeyPatch, fts_statements: list[str]
) -> None:
    await _paraphrase_memory(store)
    await store.recall(OWNER, "Who plays the drums in my band?")
    with_feedback = len(fts_statements)
    fts_statements.clear()
    monkeypatch.setattr(expansion, "FEEDBACK_TERMS", 0)
    await store.recall(OWNER, "Who plays the drums in my band?")
    assert with_feedback == len(fts_statements) + 1
