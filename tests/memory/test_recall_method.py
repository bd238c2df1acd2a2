"""The recall method on a real migrated SQLite file (and PostgreSQL database): the owner token,
what a question's dates favour, the clauses too common to score, and the periods a question
names; on PostgreSQL, its estimates of what is too common, the newest matches of a word past the
budget, and the index migration 0006 adds or, without btree_gin, leaves out."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text as sql

from memory import NewEpisode, Store, open_store
from memory.migrate import HEAD_REVISION, alembic_config, upgrade
from memory.recall import (
    CONTEXT_WEIGHT,
    DATE_BOOST,
    SCORE_BUDGET,
    SPEAKER_WEIGHT,
    STOP_WORDS,
    lexical_candidates,
    owner_token,
)
from memory.recall_pg import PostgresPhaseOne, clauses, estimated_rows
from memory.timeframe import windows
from tests.postgres import PostgresServer

pytestmark = pytest.mark.anyio

ANA, BEN = "user:1", "user:2"
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


async def test_a_name_the_stemmer_would_change_finds_its_speakers_turns(store: Store) -> None:
    # PostgreSQL indexes the speaker with the 'simple' configuration and the text with
    # 'english' ("Jonas" -> "jona"): a name is looked up with the speaker's own.
    for said, speaker in [("I walked to the harbour", "Jonas"), *[(f"filler {i}", "Ben") for i in range(5)]]:
        await store.episodes.add(ANA, said, speaker=speaker)
    hits = await store.recall(ANA, "What did Jonas do?", k2=3, token_budget=None)
    assert [h.episode.text for h in hits] == ["I walked to the harbour"]


# PostgreSQL only: its phase 1 (memory/recall_pg.py) and the index migration 0006 gives it.

WEATHER = ['"weather"']
_INDEXES = sql("SELECT indexname FROM pg_indexes WHERE tablename = 'episodes'")


async def _analyzed(store: Store) -> None:
    """ANALYZE now, as autovacuum would soon: recall_pg's estimates read its statistics."""
    async with store.db.transaction() as conn:
        await conn.execute(sql("ANALYZE episodes"))


async def _indexes(store: Store) -> set[str]:
    async with store.db.connection() as conn:
        return {name for (name,) in (await conn.execute(_INDEXES)).all()}


def _alone(texts: list[str]) -> list[NewEpisode]:
    """Episodes indexed without their neighbours' words."""
    return [NewEpisode(t, "user", context="") for t in texts]


async def test_postgres_leaves_out_a_word_most_of_the_owners_episodes_hold(postgres_url: str) -> None:
    many = SCORE_BUDGET + 10
    items = [NewEpisode(f"note {i} about the weather", "user") for i in range(many)]
    items.append(NewEpisode("the weather in Lisbon was lovely", "user"))
    async with open_store(postgres_url) as store:
        await store.episodes.add_many(ANA, items)
        await _analyzed(store)

        found = await lexical_candidates(store.db, ANA, "weather in Lisbon", limit=many + 1)
        assert found[0][0].text == "the weather in Lisbon was lovely"
        assert len(found) == 2  # and its neighbour, which holds it as context
        # Alone, the common word is still ranked: something is better than nothing.
        assert len(await lexical_candidates(store.db, ANA, "weather", limit=5)) == 5


async def test_postgres_ranks_the_newest_matches_of_a_word_over_the_budget(postgres_url: str) -> None:
    # The older turns say the word twice: ranking every match would put them first.
    texts = ["weather weather" if i < 20 else f"weather {i}" for i in range(30)]
    params = {"owner": ANA, "session_id": None, "window_start": None, "limit": 5}

    def run(budget: int) -> Any:
        phase = PostgresPhaseOne(CONTEXT_WEIGHT, SPEAKER_WEIGHT, DATE_BOOST, budget=budget)
        return lambda conn: phase.run(conn, "weather", WEATHER, (), STOP_WORDS, params)

    async with open_store(postgres_url) as store:
        ids = await store.episodes.add_many(ANA, _alone(texts))
        await _analyzed(store)
        found = await store.db.read(run(budget=10))
        assert len(found) == 5
        assert {view.id for view, _ in found} <= set(ids[-10:])
        # Within the budget every match is ranked: the ones that say it twice come first.
        found = await store.db.read(run(budget=100))
        assert {view.id for view, _ in found} <= set(ids[:20])


async def test_postgres_estimates_follow_the_statistics(postgres_url: str) -> None:
    texts = [f"weather {'lisbon' if i % 10 == 0 else 'porto'}" for i in range(200)]
    async with open_store(postgres_url) as store:
        await store.episodes.add_many(ANA, _alone(texts))
        await store.episodes.add_many(BEN, _alone(texts))
        await _analyzed(store)
        found = clauses(['"weather"', '"lisbon"', '"the"', '"carla"'], names={'"carla"'})
        rows = await store.db.read(lambda conn: estimated_rows(conn, ANA, found))
    assert rows is not None
    weather, lisbon, stop_word, carla_as_text, carla_as_speaker = rows
    # The lexeme's share of all episodes times the owner's: ANALYZE read every row here.
    assert weather == pytest.approx(200, rel=0.05)
    assert lisbon == pytest.approx(20, rel=0.05)
    assert stop_word == 0  # no lexeme: it matches nothing
    # Not among the most common lexemes: half the rarest one's share, as the planner takes it.
    assert carla_as_text == carla_as_speaker == pytest.approx(lisbon / 2, rel=0.05)


async def test_postgres_recall_has_the_owners_full_text_index(postgres_url: str) -> None:
    async with open_store(postgres_url) as store:
        indexes = await _indexes(store)
    assert {"ix_episodes_owner_key_search", "ix_episodes_owner_key_created_at"} <= indexes
    assert "ix_episodes_search" not in indexes  # 0006 replaced it


def test_postgres_without_btree_gin_keeps_the_old_index_and_recall_works(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"omni_test_{uuid.uuid4().hex[:12]}"
    postgres_server.run(f'CREATE DATABASE "{name}"')
    url = postgres_server.url_for(name)

    async def recall() -> tuple[set[str], list[str]]:
        async with open_store(url) as store:
            await store.episodes.add(ANA, "the weather in Lisbon was lovely", speaker="user")
            return await _indexes(store), [h.episode.text for h in await store.recall(ANA, "Lisbon weather")]

    try:
        command.upgrade(alembic_config(url), "0005_update_leases")  # type: ignore[arg-type]
        # A role that may not create extensions here (PostgreSQL 12, a managed server's allow list).
        postgres_server.run(f'REVOKE CREATE ON DATABASE "{name}" FROM CURRENT_USER')
        with caplog.at_level(logging.WARNING):
            assert upgrade(url) == HEAD_REVISION
        assert "CREATE EXTENSION btree_gin" in caplog.text
        indexes, recalled = asyncio.run(recall())
        assert "ix_episodes_search" in indexes and "ix_episodes_owner_key_search" not in indexes
        assert recalled == ["the weather in Lisbon was lovely"]
    finally:
        postgres_server.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
