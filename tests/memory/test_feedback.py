"""Feedback on answers, on a real migrated SQLite file: a Telegram message id leads to the stored
answer, from there to the episodes recalled for it, whose q moves toward the reward; old rewards
fade back toward neutral once an episode is recalled often without one."""

from __future__ import annotations

import itertools

import pytest

from memory import NewEpisode, Store
from memory.types import Exchange, NewMessage
from memory.utility import FADE, NEUTRAL_Q, UNREWARDED_GRACE

pytestmark = pytest.mark.anyio

ANA = "user:1"
BEN = "user:2"
CHAT = 1  # Ana's private chat
_updates = itertools.count(1)


async def answer(store: Store, chat_id: int, owner: str, recalled: list[int], telegram_ids: list[int]) -> int:
    """Store an answer in the chat's session that recalled ``recalled`` and was delivered as the
    Telegram messages ``telegram_ids``, as the agent and the bot do; the answer's id."""
    ref = await store.conversations.current(f"tg:{chat_id}", telegram_chat_id=chat_id)
    exchange = Exchange(
        owner, NewEpisode("a question"), NewEpisode("an answer", "assistant"), tuple(recalled)
    )
    mid = await store.conversations.add_answer(
        ref.session_id, NewMessage(role="assistant", content="an answer"), exchange=exchange
    )
    await store.updates.finish(next(_updates), "answered", sent=(mid, telegram_ids))
    return mid


async def q_of(store: Store, owner: str) -> dict[int, float]:
    """q of the owner's seeded episodes (not the exchanges' own question and answer)."""
    page, _ = await store.episodes.listing(owner, limit=100)
    return {e.id: e.q for e in page if e.text not in ("a question", "an answer")}


async def test_a_reaction_rewards_the_episodes_recalled_for_that_answer(store: Store) -> None:
    one, two, three = [await store.episodes.add(ANA, f"fact {i}", speaker="user") for i in range(3)]
    await answer(store, CHAT, ANA, [one, two], telegram_ids=[10, 11])  # a reply in two messages
    await answer(store, CHAT, ANA, [three], telegram_ids=[12])

    changed = await store.episodes.feedback_for_answer(ANA, chat_id=CHAT, telegram_message_id=11, reward=0.0)

    assert changed == 2
    assert await q_of(store, ANA) == {
        one: pytest.approx(0.4),
        two: pytest.approx(0.4),
        three: pytest.approx(0.5),
    }
    changed = await store.episodes.feedback_for_answer(ANA, chat_id=CHAT, telegram_message_id=10, reward=1.0)
    assert changed == 2
    assert (await q_of(store, ANA))[one] == pytest.approx(0.4 + 0.2 * (1 - 0.4))
    page, _ = await store.episodes.listing(ANA, limit=100)
    rewards = {e.id: e.meta.get("rewards") for e in page}
    assert (rewards[one], rewards[two], rewards[three]) == (2, 2, None)


async def test_without_a_message_id_the_chats_last_answer_is_rewarded(store: Store) -> None:
    old, new = [await store.episodes.add(ANA, f"fact {i}", speaker="user") for i in range(2)]
    await answer(store, CHAT, ANA, [old], telegram_ids=[10])
    await answer(store, CHAT, ANA, [new], telegram_ids=[12])

    assert await store.episodes.feedback_for_answer(ANA, chat_id=CHAT, reward=1.0) == 1

    assert await q_of(store, ANA) == {old: pytest.approx(0.5), new: pytest.approx(0.6)}


async def test_feedback_reaches_only_that_chat_and_that_owners_episodes(store: Store) -> None:
    mine = await store.episodes.add(ANA, "Ana's fact", speaker="user")
    bens = await store.episodes.add(BEN, "Ben's fact", speaker="user")
    await answer(store, CHAT, ANA, [mine], telegram_ids=[10])
    await answer(store, 2, BEN, [bens], telegram_ids=[10])  # the same message id in Ben's chat

    # No such message in Ana's chat, a user message of hers, a chat with no answers at all.
    assert await store.episodes.feedback_for_answer(ANA, chat_id=CHAT, telegram_message_id=9, reward=0.0) == 0
    assert await store.episodes.feedback_for_answer(ANA, chat_id=999, reward=0.0) == 0
    # Ben's answer named with Ana as the owner: his episodes are not hers to reward.
    assert await store.episodes.feedback_for_answer(ANA, chat_id=2, telegram_message_id=10, reward=0.0) == 0
    assert (
        await store.episodes.feedback_for_answer(ANA, chat_id=CHAT, telegram_message_id=10, reward=0.0) == 1
    )

    assert await q_of(store, ANA) == {mine: pytest.approx(0.4)}
    assert await q_of(store, BEN) == {bens: pytest.approx(0.5)}


async def test_an_answer_that_recalled_nothing_changes_nothing(store: Store) -> None:
    eid = await store.episodes.add(ANA, "a fact", speaker="user")
    await answer(store, CHAT, ANA, [], telegram_ids=[10])

    assert await store.episodes.feedback_for_answer(ANA, chat_id=CHAT, reward=0.0) == 0
    assert await q_of(store, ANA) == {eid: pytest.approx(0.5)}


async def test_a_bad_reward_is_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.episodes.feedback_for_answer(ANA, chat_id=CHAT, reward=-1.0)


async def test_an_old_reward_fades_toward_neutral_once_recalled_often_without_another(store: Store) -> None:
    rewarded = await store.episodes.add(ANA, "the wifi password is tangerine", speaker="user")
    plain = await store.episodes.add(ANA, "the wifi router is in the hall", speaker="user")
    await store.episodes.feedback(ANA, [rewarded], 1.0)  # q 0.6
    await store.episodes.feedback(ANA, [rewarded], 1.0)  # q 0.68

    async def recall_wifi(times: int) -> None:
        for _ in range(times):
            hits = await store.recall(ANA, "wifi", k2=5)
            assert {h.episode.id for h in hits} == {rewarded, plain}

    await recall_wifi(UNREWARDED_GRACE)
    assert await q_of(store, ANA) == {rewarded: pytest.approx(0.68), plain: pytest.approx(0.5)}

    await recall_wifi(10)
    faded = NEUTRAL_Q + (0.68 - NEUTRAL_Q) * (1 - FADE) ** 10
    assert await q_of(store, ANA) == {rewarded: pytest.approx(faded), plain: pytest.approx(0.5)}

    # A new reward starts the grace period again, from the faded q.
    await store.episodes.feedback(ANA, [rewarded], 0.0)
    await recall_wifi(UNREWARDED_GRACE)
    assert (await q_of(store, ANA))[rewarded] == pytest.approx(faded * 0.8)


async def test_an_episode_recalled_often_but_never_rewarded_stays_neutral(store: Store) -> None:
    eid = await store.episodes.add(ANA, "the wifi password is tangerine", speaker="user")
    for _ in range(UNREWARDED_GRACE + 10):
        await store.recall(ANA, "wifi")
    page, _ = await store.episodes.listing(ANA)
    assert [(e.id, e.q, e.recall_count) for e in page] == [(eid, 0.5, UNREWARDED_GRACE + 10)]
