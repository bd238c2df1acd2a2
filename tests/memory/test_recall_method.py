"""The recall method on a real migrated SQLite file: the owner token, what a question's dates
favour, the clauses too common to score, and the periods a question names."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from memory import NewEpisode, Store
from memory.recall import DATE_BOOST, SCORE_BUDGET, lexical_candidates, owner_token
from memory.timeframe import windows

pytestmark = pytest.mark.anyio

ANA = "user:1"
NOW = datetime(2024, 11, 20, 12, tzinfo=UTC)


def d(*args: int) -> datetime:
    return datetime(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What went wrong in November?", [(d(2024, 11, 1), d(2024, 12, 1))]),
        ("what happened last November", [(d(2023, 11, 1), d(2023, 12, 1))]),
        ("in December?", [(d(2023, 12, 1), d(2024, 1, 1))]),  # not begun yet this year
        ("last spring", [(d(2024, 3, 1), d(2024, 6, 1))]),
        ("spring 2023", [(d(2023, 3, 1), d(2023, 6, 1))]),
        ("winter 2024", [(d(2024, 1, 1), d(2024, 3, 1)), (d(2024, 12, 1), d(2025, 1, 1))]),
        ("at the end of April", [(d(2024, 4, 1), d(2024, 5, 1))]),
        ("the start of 2024", [(d(2024, 1, 1), d(2025, 1, 1))]),
        ("two weeks ago", [(d(2024, 11, 4), d(2024, 11, 11))]),
        ("3 days ago", [(d(2024, 11, 17), d(2024, 11, 18))]),
        ("yesterday", [(d(2024, 11, 19), d(2024, 11, 20))]),
        ("last month", [(d(2024, 10, 1), d(2024, 11, 1))]),
        ("on 2024-03-14", [(d(2024, 3, 14), d(2024, 3, 15))]),
        ("May I ask what you may know?", []),  # "may" the verb
        ("in May", [(d(2024, 5, 1), d(2024, 6, 1))]),
        ("did he fall off the bike", []),
        ("what did Ana say about her dog", []),
    ],
)
def test_the_periods_a_question_names(question: str, expected: list[tuple[datetime, datetime]]) -> None:
    assert windows(question, NOW) == expected


def test_hostile_text_names_no_period_and_never_raises() -> None:
    assert windows("9999-99-99 2024-02-30 " + "ago " * 5000, NOW) == []
    assert len(windows("January February March April May 2020 2021", NOW)) == 4


@pytest.mark.sqlite_only
async def test_the_owner_token_is_the_one_the_index_holds(store: Store, tmp_path: Path) -> None:
    owners = ["user:42", "chat:-100123", "local:ça va 🐶", ""]
    for owner in owners:
        await store.episodes.add(owner, "hello", speaker="user")
    with sqlite3.connect(tmp_path / "data" / "omni.db") as conn:
        for owner in owners:
            match = f'owner : "{owner_token(owner)}"'
            assert conn.execute(
                "SELECT count(*) FROM episodes_fts WHERE episodes_fts MATCH ?", (match,)
            ).fetchone() == (1,)


async def test_a_named_period_lifts_the_turns_told_in_it(store: Store) -> None:
    for month in (6, 11):
        when = datetime(2024, month, 5, tzinfo=UTC)
        await store.episodes.add(ANA, "the car made a noise", speaker="user", created_at=when)
    # Equal text: without a period the newer comes first (phase 2 breaks ties by recency).
    hits = await store.recall(ANA, "What was wrong with the car?", now=NOW)
    assert [h.episode.created_at.month for h in hits] == [11, 6]
    hits = await store.recall(ANA, "What was wrong with the car in June?", now=NOW)
    assert [h.episode.created_at.month for h in hits] == [6, 11]
    assert hits[1].relevance == pytest.approx(1 / (1 + DATE_BOOST))


async def test_a_named_speaker_counts_less_than_a_shared_word(store: Store) -> None:
    for text, speaker in [
        ("I walked to the harbour", "Ana"),
        ("my dog Miso loves the beach", "Ben"),
        ("we ate pasta", "Ana"),
        *[(f"filler {i}", "Ben") for i in range(10)],
    ]:
        await store.episodes.add(ANA, text, speaker=speaker)  # one by one: no neighbours
    hits = await store.recall(ANA, "What is Ana's dog called?", k2=3, token_budget=None)
    assert hits[0].episode.text == "my dog Miso loves the beach"
    assert {h.episode.speaker for h in hits[1:]} == {"Ana"}  # still candidates, below


@pytest.mark.sqlite_only
async def test_a_word_most_of_the_owners_episodes_hold_is_not_scored(store: Store) -> None:
    many = SCORE_BUDGET + 10
    items = [NewEpisode(f"note {i} about the weather", "user") for i in range(many)]
    items.append(NewEpisode("the weather in Lisbon was lovely", "user"))
    await store.episodes.add_many(ANA, items)

    found = await lexical_candidates(store.db, ANA, "weather in Lisbon", limit=many + 1)
    assert found[0][0].text == "the weather in Lisbon was lovely"
    assert len(found) == 2  # and its neighbour, which holds it as context
    # Alone, the common word is still scored: something is better than nothing.
    assert len(await lexical_candidates(store.db, ANA, "weather", limit=5)) == 5


def test_only_capitalised_words_are_asked_of_the_speaker_column() -> None:
    from memory.recall import names_in

    assert names_in("What is Ana's dog called? ask Élodie") == {'"what"', '"ana"', '"élodie"'}
    assert names_in("what did the assistant say about user settings") == set()
