"""Episodic memory on a real migrated SQLite file: store, recall, feedback, forget."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from memory import NewEpisode, Store, owner_for
from memory.recall import MAX_TERMS, fts_query, two_phase_recall
from memory.types import NewMessage

pytestmark = pytest.mark.anyio

ANA = "user:1"
BEN = "user:2"
GROUP = "chat:-100"


async def texts(store: Store, owner: str, query: str, **kw: object) -> list[str]:
    return [r.episode.text for r in await store.recall(owner, query, **kw)]


async def test_an_episode_is_stored_and_recalled_with_its_date_and_speaker(store: Store) -> None:
    when = datetime(2024, 5, 8, 13, 56, tzinfo=UTC)
    eid = await store.episodes.add(
        ANA, "I adopted a puppy called Miso", speaker="Ana", created_at=when, meta={"turn_id": "D1:1"}
    )
    await store.episodes.add(ANA, "The weather was grey all week", speaker="assistant")

    (hit,) = await store.recall(ANA, "What are my puppies called?")

    assert hit.episode.id == eid
    assert (hit.episode.owner, hit.episode.speaker, hit.episode.created_at) == (ANA, "Ana", when)
    assert hit.episode.meta == {"turn_id": "D1:1"}
    assert hit.relevance == 1.0 and hit.score == pytest.approx(0.7 + 0.3 * 0.5)


async def test_recall_counts_what_it_returns(store: Store) -> None:
    await store.episodes.add(ANA, "my bike is a green Brompton", speaker="user")
    await store.recall(ANA, "which bike do I ride")
    (hit,) = await store.recall(ANA, "which bike do I ride")
    assert hit.episode.recall_count == 1  # read before the second increment


async def test_nothing_is_recalled_when_nothing_matches(store: Store) -> None:
    await store.episodes.add(ANA, "my bike is a green Brompton", speaker="user")
    assert await store.recall(ANA, "what is the capital of Peru") == []
    assert await store.recall(ANA, "what is it that you do?") == []  # stop words only


async def test_an_owner_never_sees_another_owners_episodes(store: Store) -> None:
    await store.episodes.add(ANA, "my locker code is 4711", speaker="user")
    await store.episodes.add(GROUP, "the group locker code is 9000", speaker="Ben")

    assert await texts(store, ANA, "locker code") == ["my locker code is 4711"]
    assert await texts(store, BEN, "locker code") == []
    assert await texts(store, GROUP, "locker code") == ["the group locker code is 9000"]


def test_owner_is_the_user_in_private_the_chat_in_a_group_and_the_name_locally() -> None:
    assert owner_for(1, 1, True, "tg:1") == "user:1"
    assert owner_for(1, -100, False, "tg:-100") == "chat:-100"
    assert owner_for(None, None, False, "cli:work") == "local:work"
    assert owner_for(None, None, False, "gw:abc") == "local:gw:abc"


HOSTILE = [
    '"',
    'say "hello',
    "*",
    "foo*",
    "NEAR(",
    "NEAR(a b, 2)",
    "-",
    "-miso",
    "AND OR",
    "NOT",
    "a OR b AND NOT c",
    "(((",
    "col:miso",
    "^miso",
    "🐶🐱 puppy 🐶",
    "puppy" * 2000 + " miso " * 2000,
    "x" * 10_000,
    "",
    "   \n\t",
    "é ü 中文 日本語 ñ",
    "'; DROP TABLE episodes; --",
    "snake_case_words __init__",
]


@pytest.mark.parametrize("query", HOSTILE, ids=lambda q: repr(q[:20]))
async def test_hostile_query_text_never_raises(store: Store, query: str) -> None:
    await store.episodes.add(ANA, "I adopted a puppy called Miso 🐶", speaker="user")
    result = await store.recall(ANA, query)
    assert all(r.episode.owner == ANA for r in result)


def test_the_fts_query_quotes_terms_drops_stop_words_and_is_capped() -> None:
    assert fts_query('What is "Miso" eating NEAR( the park?') == '"miso" OR "eating" OR "near" OR "park"'
    assert fts_query("the a of") is None
    assert fts_query(" ".join(f"w{i}" for i in range(100))).count(" OR ") == MAX_TERMS - 1  # type: ignore[union-attr]


async def test_recall_leaves_out_the_current_session_and_excluded_ids(store: Store) -> None:
    old = await store.conversations.current("cli:old")
    now = await store.conversations.current("cli:now")
    kept = await store.episodes.add(
        ANA, "the dentist is on Friday", speaker="user", session_id=old.session_id
    )
    await store.episodes.add(ANA, "the dentist moved to Monday", speaker="user", session_id=now.session_id)

    assert [r.episode.id for r in await store.recall(ANA, "dentist", exclude_session_id=now.session_id)] == [
        kept
    ]
    assert await store.recall(ANA, "dentist", exclude_session_id=now.session_id, exclude_ids={kept}) == []


async def test_recall_keeps_what_fits_the_token_budget(store: Store) -> None:
    await store.episodes.add(ANA, "garden " + "tomatoes and beans " * 200, speaker="user")
    await store.episodes.add(ANA, "the garden has roses", speaker="user")

    assert await texts(store, ANA, "garden", token_budget=50) == ["the garden has roses"]
    assert len(await store.recall(ANA, "garden", token_budget=None)) == 2


async def test_neighbouring_turns_make_an_answer_findable_by_its_question(store: Store) -> None:
    await store.episodes.add_many(
        ANA,
        [
            NewEpisode("Where should I go on holiday in June?", "user"),
            NewEpisode("Lisbon: warm, not yet crowded, and cheap flights.", "assistant"),
            NewEpisode("Thanks, booked it!", "user"),
        ],
    )
    assert "Lisbon: warm, not yet crowded, and cheap flights." in await texts(store, ANA, "holiday plans")


async def test_feedback_moves_an_episode_down_then_up(store: Store) -> None:
    first = await store.episodes.add(ANA, "my favourite tea is genmaicha", speaker="user")
    second = await store.episodes.add(ANA, "my favourite tea is genmaicha", speaker="user")

    async def top() -> int:
        (hit,) = await store.recall(ANA, "favourite tea", k2=1)
        return hit.episode.id

    assert await top() == second  # a tie: the newer first
    await store.episodes.feedback(ANA, [second], 0.0)
    assert await top() == first
    await store.episodes.feedback(ANA, [second], 1.0)
    await store.episodes.feedback(ANA, [second], 1.0)
    assert await top() == second
    await store.episodes.feedback(BEN, [second], 0.0)  # another owner's feedback changes nothing
    (view,), _ = await store.episodes.listing(ANA, limit=1)
    assert view.id == second and view.q == pytest.approx(0.4 + 0.2 * 0.6 + 0.2 * (1 - 0.52))


async def test_feedback_refuses_a_reward_outside_zero_and_one(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.episodes.feedback(ANA, [1], 2.0)


async def test_listing_pages_and_counts(store: Store) -> None:
    for i in range(5):
        await store.episodes.add(ANA, f"note {i}", speaker="user")
    await store.episodes.add(BEN, "not Ana's", speaker="user")

    page, total = await store.episodes.listing(ANA, limit=2, offset=2)
    assert total == 5 and [v.text for v in page] == ["note 2", "note 1"]
    assert await store.episodes.count() == 6


async def test_forget_deletes_only_the_owners_episode(store: Store) -> None:
    mine = await store.episodes.add(ANA, "my passport number is X123", speaker="user")

    assert await store.episodes.forget(BEN, mine) == 0
    assert await texts(store, ANA, "passport") == ["my passport number is X123"]
    assert await store.episodes.forget(ANA, mine) == 1
    assert await store.recall(ANA, "passport") == []


async def test_forget_all_removes_episodes_and_history_of_that_owner_only(store: Store) -> None:
    ref = await store.conversations.current("tg:1")
    await store.conversations.append(ref.session_id, NewMessage(role="user", content="hello from Ana"))
    await store.episodes.add(ANA, "Ana likes figs", speaker="user", session_id=ref.session_id)
    await store.episodes.add(BEN, "Ben likes figs", speaker="user")

    assert await store.episodes.forget_all(ANA) == 1

    assert await store.conversations.messages(ref.session_id) == []
    assert (await store.conversations.current("tg:1")).session_id == ref.session_id  # still usable
    assert await texts(store, BEN, "figs") == ["Ben likes figs"]
    assert await store.recall(ANA, "figs") == []


@pytest.mark.sqlite_only
async def test_forget_all_leaves_no_trace_in_any_file(store: Store, db_url: str, tmp_path: Path) -> None:
    word = "Quixblorvat"
    ref = await store.conversations.current("tg:1", telegram_chat_id=1)
    await store.conversations.add_question(
        ref.session_id, NewMessage(role="user", content=f"the code word is {word}", telegram_update_id=77)
    )
    await store.updates.record(77, chat_id=1, user_id=1, payload={"message": {"text": f"code {word}"}})
    await store.episodes.add_many(ANA, [NewEpisode(f"the code word is {word}", "user", ref.session_id)])
    for i in range(300):  # enough rows that the index has several pages and segments
        await store.episodes.add(BEN, f"filler episode number {i} about nothing much", speaker="user")
    assert await texts(store, ANA, word.lower())

    await store.episodes.forget_all(ANA)

    files = [p for p in (tmp_path / "data").iterdir() if p.is_file()]
    assert any(p.name.endswith(".db") for p in files)
    for path in files:
        data = path.read_bytes()
        for needle in (word, word.lower(), word.upper()):
            assert needle.encode() not in data, f"{needle} found in {path.name}"
    with sqlite3.connect(tmp_path / "data" / "omni.db") as conn:
        assert conn.execute(
            "SELECT count(*) FROM episodes_fts WHERE episodes_fts MATCH ?", (word,)
        ).fetchone() == (0,)
    assert len(await store.recall(BEN, "filler episode", k2=3)) == 3


async def test_two_phase_recall_takes_the_database_too(store: Store) -> None:
    await store.episodes.add(ANA, "call mum on Sunday", speaker="user")
    assert [r.episode.text for r in await two_phase_recall(store.db, ANA, "mum")] == ["call mum on Sunday"]
