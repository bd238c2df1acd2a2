"""Facts distilled from turns: stored with their sources, superseding, forgotten with them."""

from __future__ import annotations

import pytest

from agent.consolidation import parse_facts, transcript
from memory.facts import NewFact
from memory.store import Store
from memory.types import NewEpisode

pytestmark = pytest.mark.anyio

OWNER, OTHER = "user:1", "user:2"


async def _turns(store: Store, owner: str, *texts: str) -> list[int]:
    return await store.episodes.add_many(owner, [NewEpisode(text=t) for t in texts])


async def test_facts_are_stored_marked_recalled_and_superseded(store: Store) -> None:
    first, second = await _turns(store, OWNER, "I live in Lyon now", "we moved in May")
    assert await store.facts.mark(OWNER) == 0
    assert [t.id for t in await store.facts.turns_after(OWNER, 0, 10)] == [first, second]

    (old,) = await store.facts.save(OWNER, [NewFact("Lives in Lyon.", (first, second))], through=second)
    assert await store.facts.mark(OWNER) == second
    assert await store.facts.turns_after(OWNER, second, 10) == []
    recalled = await store.recall(OWNER, "where does he live, which city", token_budget=None)
    assert old in [r.episode.id for r in recalled]

    (third,) = await _turns(store, OWNER, "big news, I moved to Porto last week")
    (new,) = await store.facts.save(OWNER, [NewFact("Lives in Porto.", (third,), (old,))], through=third)
    assert [f.id for f in await store.facts.current(OWNER)] == [new]
    # The mark moved on; facts are not turns to consolidate again.
    assert await store.facts.turns_after(OWNER, await store.facts.mark(OWNER), 10) == []


async def test_a_fact_cannot_supersede_another_owners_fact(store: Store) -> None:
    (theirs_turn,) = await _turns(store, OTHER, "I have a cat called Tom")
    (theirs,) = await store.facts.save(
        OTHER, [NewFact("Has a cat, Tom.", (theirs_turn,))], through=theirs_turn
    )
    (mine_turn,) = await _turns(store, OWNER, "no pets for me")
    await store.facts.save(OWNER, [NewFact("Has no pets.", (mine_turn,), (theirs,))], through=mine_turn)
    assert [f.id for f in await store.facts.current(OTHER)] == [theirs]


async def test_forgetting_a_turn_forgets_the_facts_drawn_from_it(store: Store) -> None:
    kept_turn, secret_turn = await _turns(store, OWNER, "I like tea", "my pin is 4321")
    kept, secret = await store.facts.save(
        OWNER,
        [NewFact("Likes tea.", (kept_turn,)), NewFact("Their PIN is 4321.", (secret_turn, kept_turn))],
        through=secret_turn,
    )
    assert await store.episodes.forget(OWNER, secret_turn) == 1
    assert [f.id for f in await store.facts.current(OWNER)] == [kept]
    page, _ = await store.episodes.listing(OWNER, limit=50)
    assert all("4321" not in e.text for e in page)


def test_parse_keeps_only_supported_facts_and_known_ids() -> None:
    answer = """```json
    {"facts": [
      {"text": "Has a dog called Miso.", "sources": [3, 99], "supersedes": ["F7", 8, "x"]},
      {"text": "Invented, no source.", "sources": [42]},
      {"text": "  ", "sources": [3]},
      "not an object",
      {"text": "Works night shifts since May 2024.", "sources": ["4"]}
    ]}
    ```"""
    facts = parse_facts(answer, turn_ids={3, 4}, fact_ids={7})
    assert facts == [
        NewFact("Has a dog called Miso.", (3,), (7,)),
        NewFact("Works night shifts since May 2024.", (4,)),
    ]
    for bad in ("no json here", '{"notes": []}', "[1, 2]"):
        with pytest.raises(ValueError):
            parse_facts(bad, {1}, set())


async def test_transcript_names_ids_dates_and_speakers(store: Store) -> None:
    (turn,) = await _turns(store, OWNER, "I adopted a puppy")
    (fact,) = await store.facts.save(OWNER, [NewFact("Has a puppy.", (turn,))], through=turn)
    text = transcript(await store.facts.current(OWNER), await store.facts.turns_after(OWNER, 0, 10))
    assert f"[F{fact}] Has a puppy." in text and f"[{turn}] " in text and "user: I adopted a puppy" in text
