"""Learned utility: what recall's second phase ranks by, and how feedback and recalls move it.

A reward r (1: 👍, 0: 👎) moves an episode's utility q <- q + alpha (r - q) (alpha 0.2 by
default); q ranks recall (memory/recall.py). Each reward also notes in the episode's meta how
many rewards it got ("rewards") and its recall count at the last one ("rewarded_at_recall").
An old reward fades: once an episode has been recalled UNREWARDED_GRACE times since its last
reward, every further recall moves q FADE of the way back to the neutral NEUTRAL_Q. That is
applied lazily, in the statement that counts the recall (Q_AFTER_RECALL), so it costs no query
of its own; an episode never rewarded sits at NEUTRAL_Q already and is left as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import bindparam, case, func, insert, select, update

from memory.connection import Conn
from memory.models import AnswerRecall, Chat, Episode, Message, Session

NEUTRAL_Q = 0.5  # every episode's q before any feedback
UNREWARDED_GRACE = 20  # recalls since the last reward before it starts to fade
FADE = 0.02  # per further recall: about 35 recalls halve the distance to NEUTRAL_Q
ANSWER_LOOKBACK = 200  # feedback reaches the chat's last 200 delivered answers

_RECENT_ANSWERS = (
    select(Message.id, Message.sent_message_ids)
    .join(Session, Session.id == Message.session_id)
    .join(Chat, Chat.id == Session.chat_id)
    .where(Chat.telegram_chat_id == bindparam("chat_id"), Message.sent_message_ids.is_not(None))
    .order_by(Message.id.desc())
    .limit(bindparam("limit"))
)
_RECALLED_FOR = select(AnswerRecall.episode_id).where(AnswerRecall.message_id == bindparam("mid"))
_INSERT_RECALLS = insert(AnswerRecall)
_TO_REWARD = (
    select(Episode.id, Episode.q, Episode.recall_count, Episode.meta)
    .where(Episode.owner_key == bindparam("owner"), Episode.id.in_(bindparam("ids", expanding=True)))
    .with_for_update()  # PostgreSQL: two rewards of one episode at once both count
)
_SET_REWARD = (
    update(Episode)
    .where(Episode.id == bindparam("eid"))
    .values(q=bindparam("new_q"), meta=bindparam("new_meta", type_=Episode.meta.type))
)
_RECALLS_SINCE_REWARD = Episode.recall_count - func.coalesce(
    Episode.meta["rewarded_at_recall"].as_integer(), 0
)
# q after one more recall (SET clauses read the old row: recall_count before this recall).
Q_AFTER_RECALL = case(
    (_RECALLS_SINCE_REWARD >= UNREWARDED_GRACE, Episode.q + FADE * (NEUTRAL_Q - Episode.q)),
    else_=Episode.q,
)


_MARK_RECALLED = (
    update(Episode)
    .where(Episode.id.in_(bindparam("ids", expanding=True)))
    .values(recall_count=Episode.recall_count + 1, last_recalled_at=bindparam("now"), q=Q_AFTER_RECALL)
)


def check_reward(reward: float, alpha: float) -> None:
    if not 0.0 <= reward <= 1.0 or not 0.0 < alpha <= 1.0:
        raise ValueError(f"reward must be in [0, 1] and alpha in (0, 1], got {reward}, {alpha}")


async def reward_episodes(
    conn: Conn, owner: str, episode_ids: Sequence[int], reward: float, alpha: float
) -> int:
    """Apply one reward to ``owner``'s episodes among ``episode_ids`` on ``conn``; how many."""
    rows = (await conn.execute(_TO_REWARD, {"owner": owner, "ids": sorted(set(episode_ids))})).all()
    changes = []
    for eid, q, recall_count, meta in rows:
        marks = {"rewards": int((meta or {}).get("rewards", 0)) + 1, "rewarded_at_recall": recall_count}
        changes.append({"eid": eid, "new_q": q + alpha * (reward - q), "new_meta": {**(meta or {}), **marks}})
    if changes:
        await conn.execute(_SET_REWARD, changes)
    return len(changes)


async def recalled_for_answer(conn: Conn, chat_id: int, telegram_message_id: int | None) -> list[int]:
    """The episodes recalled for our answer in the Telegram chat ``chat_id`` delivered as
    ``telegram_message_id`` (the chat's last answer when None), among its last ANSWER_LOOKBACK."""
    answers = (await conn.execute(_RECENT_ANSWERS, {"chat_id": chat_id, "limit": ANSWER_LOOKBACK})).all()
    answer = next(
        (
            row.id
            for row in answers
            if telegram_message_id is None or telegram_message_id in (row.sent_message_ids or ())
        ),
        None,
    )
    if answer is None:
        return []
    return list((await conn.execute(_RECALLED_FOR, {"mid": answer})).scalars().all())


async def record_recalls(conn: Conn, message_id: int, episode_ids: Sequence[int]) -> None:
    """Note that ``episode_ids`` were recalled into the prompt of the answer ``message_id``, and
    count the recall (:func:`mark_recalled`), in the answer's transaction."""
    if episode_ids:
        await conn.execute(
            _INSERT_RECALLS, [{"message_id": message_id, "episode_id": e} for e in set(episode_ids)]
        )
        await mark_recalled(conn, episode_ids)


async def mark_recalled(conn: Conn, episode_ids: Sequence[int]) -> None:
    """One more recall of each of ``episode_ids``: its count, its time, and an old reward's fade."""
    stamp = datetime.now(UTC).replace(tzinfo=None)
    await conn.execute(_MARK_RECALLED, {"ids": sorted(set(episode_ids)), "now": stamp})
